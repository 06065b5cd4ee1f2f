// Run by `npm ci` (postinstall). @20minutes/s3rver 5.0.0 builds the SigV4 canonical URI of a
// virtual-hosted request as /<bucket>/<key>: right for SigV2, wrong for SigV4, where S3 uses
// /<key> (the bucket is in the Host header). So it refuses every correct vhost V4 signature.
// This changes only that: for SigV4 on a vhost request the leading /<bucket> is dropped.
// tests/e2e/test_s3rver_patch.py proves the patched server still refuses bad signatures.
const fs = require("fs");
const path = require("path");

const file = path.join(__dirname, "..", "..", "node_modules", "@20minutes", "s3rver", "lib", "middleware", "authentication.js");
const original = "      uri: canonicalizedResource,\n";
const patched =
  "      // sigv4-signer patch: SigV4 signs /<key> for virtual-hosted requests, not /<bucket>/<key>\n" +
  "      uri: request.signature.version === 4 && ctx.state.vhost\n" +
  "        ? canonicalizedResource.replace(/^\\/[^/]*/, '') || '/'\n" +
  "        : canonicalizedResource,\n";

if (!fs.existsSync(file)) {
  process.exit(0); // s3rver not installed (e.g. a production install): nothing to patch
}
const text = fs.readFileSync(file, "utf8");
if (text.includes("sigv4-signer patch")) {
  process.exit(0);
}
if (!text.includes(original)) {
  console.error("patch-s3rver: the expected line is not in " + file + "; was s3rver upgraded?");
  process.exit(1);
}
fs.writeFileSync(file, text.replace(original, patched));
console.log("patch-s3rver: SigV4 vhost canonical URI fixed");
