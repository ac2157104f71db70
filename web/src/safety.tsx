// The safety number of you and a contact: 60 digits and a QR code of them to compare in person, and "mark verified".
import { useEffect, useState } from 'preact/hooks';
import { renderSVG } from 'uqr';
import { formatSafetyNumber } from '../../client-sdk/index.js';
import type { ChatModel } from './model.js';
import { Dialog, errorText } from './ui.js';

export function SafetyNumber({ model, userId, onClose }: { model: ChatModel; userId: string; onClose: () => void }) {
  const [digits, setDigits] = useState<string | null>(null);
  const [verified, setVerified] = useState(false);
  const [error, setError] = useState('');
  useEffect(() => {
    void model.client
      .safetyNumber(userId)
      .then(setDigits)
      .catch((err) => setError(errorText(err)));
  }, [userId]);
  return (
    <Dialog title="Safety number" onClose={onClose}>
      <p>
        Compare this number with {model.name(userId)}’s screen, or scan each other’s code. If they match, nobody (not even the server) sits between
        you.
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {digits && (
        <>
          <p class="safety-number" aria-label="Safety number digits">
            {formatSafetyNumber(digits)}
          </p>
          {/* The SVG is drawn by uqr from the digits alone: no markup from anyone else. */}
          <div class="qr" role="img" aria-label="QR code of the safety number" dangerouslySetInnerHTML={{ __html: renderSVG(digits, { border: 2 }) }} />
          <button
            type="button"
            disabled={verified}
            onClick={() =>
              void model.client
                .markVerified(userId)
                .then(() => setVerified(true))
                .catch((err) => setError(errorText(err)))
            }
          >
            {verified ? 'Verified ✓' : 'Mark verified'}
          </button>
        </>
      )}
    </Dialog>
  );
}
