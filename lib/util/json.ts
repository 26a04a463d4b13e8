// JSON.parse whose errors say where: V8 reports a character position; people read lines and columns.

/** `text` parsed, or a SyntaxError of V8's message with the line and column it points at. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const position = /at position (\d+)/.exec(message);
    const where = position ? lineAndColumn(text, Number(position[1])) : text.trim() === '' ? ' (the text is empty)' : '';
    throw new SyntaxError(`${message}${where}`);
  }
}

function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  return ` (line ${before.split('\n').length}, column ${position - before.lastIndexOf('\n')})`;
}
