// Group info: members and roles, rename, add and remove members, change roles, leave, delete.
import { useEffect, useState } from 'preact/hooks';
import type { GroupInfo as Info, GroupRole } from '../../client-sdk/index.js';
import type { ChatModel, Conversation } from './model.js';
import { Dialog, errorText } from './ui.js';

export function GroupInfo({ model, conv, onClose }: { model: ChatModel; conv: Conversation; onClose: () => void }) {
  const [info, setInfo] = useState<Info | null>(null);
  const [error, setError] = useState('');
  const reload = () =>
    void model.client
      .getGroup(conv.id)
      .then(setInfo)
      .catch((err) => setError(errorText(err)));
  useEffect(reload, [conv.id, conv.lastSeq]);
  const act = (f: () => Promise<unknown>) =>
    void f()
      .then(async () => (await model.loadConversations(), reload()))
      .catch((err) => setError(errorText(err)));
  const myRole = info?.members.find((m) => m.userId === model.me)?.role;
  const manage = myRole === 'owner' || myRole === 'admin';
  return (
    <Dialog title="Group info" onClose={onClose}>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {info && (
        <>
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              const name = String(new FormData(e.target as HTMLFormElement).get('name') ?? '').trim();
              if (name) act(() => model.client.renameGroup(conv.id, name));
            }}
          >
            <label>
              Group name
              <input name="name" defaultValue={info.name} maxLength={100} disabled={!manage} />
            </label>
            {manage && <button type="submit">Rename</button>}
          </form>
          <h3>{info.members.length} members</h3>
          <ul class="members" aria-label="Members">
            {info.members.map((m) => (
              <li key={m.userId} data-member={model.name(m.userId)}>
                <span class="name">
                  {model.name(m.userId)}
                  {m.userId === model.me ? ' (you)' : ''}
                </span>
                {manage && m.userId !== model.me && myRole === 'owner' ? (
                  <label>
                    <span class="visually-hidden">Role of {model.name(m.userId)}</span>
                    <select value={m.role} onChange={(e) => act(() => model.client.setGroupRole(conv.id, m.userId, (e.target as HTMLSelectElement).value as GroupRole))}>
                      <option value="member">member</option>
                      <option value="admin">admin</option>
                      <option value="owner">owner</option>
                    </select>
                  </label>
                ) : (
                  <span class="role">{m.role}</span>
                )}
                {manage && m.userId !== model.me && (
                  <button type="button" class="secondary" aria-label={`Remove ${model.name(m.userId)}`} onClick={() => act(() => model.client.removeMember(conv.id, m.userId))}>
                    Remove
                  </button>
                )}
              </li>
            ))}
          </ul>
          {manage && (
            <form
              class="row"
              onSubmit={(e) => {
                e.preventDefault();
                const input = (e.target as HTMLFormElement).elements.namedItem('add') as HTMLInputElement;
                const username = input.value.trim();
                act(async () => {
                  await model.client.addMember(conv.id, await model.client.findUser(username));
                  input.value = '';
                });
              }}
            >
              <label>
                Add member
                <input name="add" placeholder="username" autocomplete="off" required />
              </label>
              <button type="submit">Add</button>
            </form>
          )}
          <div class="row">
            <button type="button" class="danger" onClick={() => confirm('Leave this group?') && act(async () => (await model.client.leaveGroup(conv.id), onClose()))}>
              Leave group
            </button>
            {myRole === 'owner' && (
              <button type="button" class="danger" onClick={() => confirm('Delete this group for everyone?') && act(async () => (await model.client.deleteGroup(conv.id), onClose()))}>
                Delete group
              </button>
            )}
          </div>
        </>
      )}
    </Dialog>
  );
}
