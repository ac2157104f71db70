// The SDK's file sharing: a file encrypted on the device, uploaded (retried, across gateways), shared with the conversation and named in a message; received files download on demand.
import type { ReceivedFile, SendFileOptions, SendFileResult, SendResult } from './client.types.js';
import type { Clock } from './clock.js';
import { ciphertextSize, downloadFile, encryptFile, type FileRef, fileRefOf, type Progress, uploadCiphertext } from './files.js';
import { ParleyError } from './http.js';
import { TEMPORARY } from './outbox.js';

export interface FileSharingOptions {
  /** A REST call with the current token. */
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
  token(): Promise<string>;
  /** The gateway in use, and a move to the next one when it cannot be reached. */
  baseUrl(): string;
  nextGateway(): void;
  /** Whether an id is a group of ours (else it is taken for a user id). */
  isGroup(id: string): Promise<boolean>;
  /** Sends the message that names the file, through the outbox. */
  sendMessage(to: string, group: boolean, file: FileRef): Promise<SendResult>;
  uploadProgress(p: Progress): void;
  downloadProgress(p: Progress): void;
  clock: Clock;
}

/** Sends and opens files for one client. */
export class FileSharing {
  private limits: { maxBytes: number } | undefined;

  constructor(private readonly o: FileSharingOptions) {}

  /** Encrypts, uploads (up to three tries on temporary failures), shares with the conversation, then sends the message that names it. */
  async send(to: string, data: Uint8Array | Blob, options: SendFileOptions): Promise<SendFileResult> {
    await this.checkSize(data);
    const group = await this.o.isGroup(to);
    const file = await this.upload(data, options);
    // Let the conversation's members download it before the message that names it is sent.
    await this.o.call('POST', `/v1/files/${encodeURIComponent(file.id)}/shares`, group ? { conversationId: to } : { userId: to });
    return { ...(await this.o.sendMessage(to, group, file)), fileId: file.id };
  }

  /**
   * Encrypts and uploads a file without sharing it: only the uploader's own devices may
   * download it (a history archive). Up to three tries on temporary failures.
   */
  async upload(data: Uint8Array | Blob, options: SendFileOptions): Promise<FileRef> {
    await this.checkSize(data);
    const encrypted = await encryptFile(data);
    const report = (p: Progress) => {
      options.onProgress?.(p);
      this.o.uploadProgress(p);
    };
    let uploaded: { id: string } | undefined;
    for (let attempt = 1; !uploaded; attempt++) {
      try {
        uploaded = await uploadCiphertext(this.o.baseUrl(), await this.o.token(), encrypted, (loaded) => report({ name: options.name, loaded, total: encrypted.size }));
      } catch (err) {
        if (!(err instanceof ParleyError) || !TEMPORARY.has(err.code) || attempt >= 3) throw err;
        if (err.status === undefined) this.o.nextGateway(); // unreachable: try the next gateway
        await new Promise((r) => this.o.clock.setTimeout(() => r(undefined), 500 * attempt));
      }
    }
    report({ fileId: uploaded.id, name: options.name, loaded: encrypted.size, total: encrypted.size });
    return fileRefOf(encrypted, uploaded.id, { name: options.name, type: options.type ?? '' });
  }

  /** Refuses here what the server would refuse (413), before encrypting and sending it all. */
  private async checkSize(data: Uint8Array | Blob): Promise<void> {
    this.limits ??= await this.o.call<{ maxBytes: number }>('GET', '/v1/files/limits');
    const size = ciphertextSize(data instanceof Uint8Array ? data.length : data.size);
    if (size > this.limits.maxBytes) {
      throw new ParleyError('too_large', `file too large for this server: ${size} bytes encrypted, the limit is ${this.limits.maxBytes}`);
    }
  }

  /** A file named in a received message, for the app: its key and hash stay in here. */
  received(ref: FileRef): ReceivedFile {
    return {
      id: ref.id,
      name: ref.name,
      type: ref.type,
      size: ref.size,
      download: (options = {}) =>
        downloadFile(
          () => this.o.baseUrl(),
          () => this.o.token(),
          ref,
          (loaded) => {
            const p: Progress = { fileId: ref.id, name: ref.name, loaded, total: ciphertextSize(ref.size) };
            options.onProgress?.(p);
            this.o.downloadProgress(p);
          },
        ),
    };
  }
}
