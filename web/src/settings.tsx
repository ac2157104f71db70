// Settings: notifications, blocked users, this account's devices, change password, delete account, sign out.
import { useEffect, useState } from 'preact/hooks';
import type { AccountDevice, BlockedUser } from '../../client-sdk/index.js';
import type { ChatModel } from './model.js';
import { saveCredentials } from './vault.js';
import { Dialog, errorText } from './ui.js';

export function Settings(props: { model: ChatModel; onClose: () => void; onSignedOut: () => void; onNotifications: () => Promise<string> }) {
  const { model } = props;
  const [blocked, setBlocked] = useState<BlockedUser[]>([]);
  const [devices, setDevices] = useState<AccountDevice[]>([]);
  const [note, setNote] = useState('');
  const [error, setError] = useState('');
  const reload = () => {
    void model.client.blocks().then(setBlocked, () => undefined);
    void model.client.listDevices().then(setDevices, () => undefined);
  };
  useEffect(reload, [model]);
  const act = (f: () => Promise<unknown>) => void f().catch((err) => setError(errorText(err)));
  return (
    <Dialog title="Settings" onClose={props.onClose}>
      {note && (
        <p class="note" role="status">
          {note}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <h3>Notifications</h3>
      <button type="button" onClick={() => act(async () => setNote(await props.onNotifications()))}>
        Enable notifications
      </button>
      <h3>Blocked users</h3>
      {blocked.length === 0 ? (
        <p class="hint">Nobody.</p>
      ) : (
        <ul aria-label="Blocked users">
          {blocked.map((b) => (
            <li key={b.userId}>
              {model.name(b.userId)}{' '}
              <button type="button" class="secondary" onClick={() => act(async () => (await model.client.unblock(b.userId), reload()))}>
                Unblock
              </button>
            </li>
          ))}
        </ul>
      )}
      <h3>Devices</h3>
      <ul aria-label="Devices">
        {devices.map((d) => (
          <li key={d.id}>{d.name}</li>
        ))}
      </ul>
      <h3>Change password</h3>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const form = e.target as HTMLFormElement;
          const data = new FormData(form);
          const next = String(data.get('next') ?? '');
          act(async () => {
            await model.client.changePassword(String(data.get('current') ?? ''), next);
            await saveCredentials({ username: model.credentials.username, password: next });
            form.reset();
            setNote('Password changed; your other devices were signed out.');
          });
        }}
      >
        <label>
          Current password
          <input name="current" type="password" autocomplete="current-password" required />
        </label>
        <label>
          New password
          <input name="next" type="password" autocomplete="new-password" required minLength={8} />
        </label>
        <button type="submit">Change password</button>
      </form>
      <h3>Account</h3>
      <div class="row">
        <button type="button" class="secondary" onClick={() => act(async () => (await model.signOut(), props.onSignedOut()))}>
          Sign out
        </button>
      </div>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const password = String(new FormData(e.target as HTMLFormElement).get('password') ?? '');
          if (!confirm('Delete your account, its messages and its devices? This cannot be undone.')) return;
          act(async () => {
            await model.client.deleteAccount(password);
            await model.erase();
            props.onSignedOut();
          });
        }}
      >
        <label>
          Password to delete the account
          <input name="password" type="password" autocomplete="current-password" required />
        </label>
        <button type="submit" class="danger">
          Delete account
        </button>
      </form>
    </Dialog>
  );
}
