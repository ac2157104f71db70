// The web client's entry: registers the service worker (Web Push) and renders the app.
import { render } from 'preact';
// Socket.IO (the fallback where WebSockets are blocked) comes with the page, not on first need:
// that need may arise while offline, when nothing can be fetched.
import 'socket.io-client';
import { App } from './app.js';
import './styles.css';

if ('serviceWorker' in navigator) {
  void navigator.serviceWorker.register('/sw.js', { type: 'module', scope: '/' }).catch(() => undefined);
}
render(<App />, document.getElementById('app')!);
