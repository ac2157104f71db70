// What travels inside the encryption: the message content a device encodes and its peers decode.

/** The plaintext of a message, before encryption and after decryption. Version 1 is JSON. */
export interface Content {
  text: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * Encodes content for encryption.
 * @example encodeContent({ text: 'hi' }) // bytes of {"v":1,"text":"hi"}
 */
export function encodeContent(content: Content): Uint8Array {
  return enc.encode(JSON.stringify({ v: 1, ...content }));
}

/** Decodes decrypted bytes; unknown fields are ignored, a missing text is ''. Throws on bytes that are not JSON. */
export function decodeContent(bytes: Uint8Array): Content {
  const raw = JSON.parse(dec.decode(bytes)) as { text?: unknown };
  return { text: typeof raw.text === 'string' ? raw.text : '' };
}
