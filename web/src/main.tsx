// The web client's entry: registers the service worker (Web Push) and renders the app.
import { render } from 'preact';
import { App } from './app.js';
import './styles.css';

if ('serviceWorker' in navigator) {
  void navigator.serviceWorker.register('/sw.js', { type: 'module', scope: '/' }).catch(() => undefined);
}
render(<App />, document.getElementById('app')!);
