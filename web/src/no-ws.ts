// Stands in for the `ws` package in the browser build: the SDK uses the browser's own WebSocket there and never loads `ws`.
export default undefined;
