// Parses an AsyncAPI document with the reference parser (@asyncapi/parser, pinned in
// tests/package.json) and prints its diagnostics as JSON lines; exits 1 when it reports an
// error (severity 0) or yields no document. Used by tests/unit/server/test_protocol_documents.py.
import { Parser, fromFile } from '@asyncapi/parser';

const [, , path] = process.argv;
const { document, diagnostics } = await fromFile(new Parser(), path).parse();
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, path: d.path, message: d.message }));
}
if (document !== undefined) {
  const channels = document.channels().all().map((c) => c.address());
  const messages = document.allMessages().all().length;
  console.log(JSON.stringify({ channels, messages }));
}
process.exit(document === undefined || diagnostics.some((d) => d.severity === 0) ? 1 : 0);
