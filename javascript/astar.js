// A-STAR extension. Every global name defined here starts with "astar".
// The token picker (chips under the prompt) lives here once the UI issue lands; until then this file
// only declares the extension's namespace so that the WebUI's script loader has a file to inject.
var astarExtension = window.astarExtension || {version: "0.1.0"};
window.astarExtension = astarExtension;
