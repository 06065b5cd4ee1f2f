// A signature-checking S3 for the end-to-end tests: @20minutes/s3rver on 127.0.0.1.
// Usage: node tests/e2e/s3rver.js <port> <directory> <bucket> <access key> <secret> <cors origins, comma list>
// Virtual-hosted names: <bucket>.s3.localhost:<port> (service endpoint "localhost").
const S3rver = require("@20minutes/s3rver");
const { DUMMY_ACCOUNT } = require("@20minutes/s3rver/lib/models/account");

const [port, directory, bucket, accessKey, secret, origins] = process.argv.slice(2);
DUMMY_ACCOUNT.createKeyPair(accessKey, secret);

const allowed = (origins || "*").split(",").map((o) => `<AllowedOrigin>${o}</AllowedOrigin>`).join("");
const cors = `<CORSConfiguration><CORSRule>${allowed}
  <AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod>
  <AllowedMethod>DELETE</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>
  <AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds>
</CORSRule></CORSConfiguration>`;

new S3rver({
  address: "127.0.0.1",
  port: Number(port),
  directory,
  silent: true,
  serviceEndpoint: "localhost",
  configureBuckets: [{ name: bucket, configs: [Buffer.from(cors)] }],
})
  .run()
  .then(() => console.log(`s3rver on 127.0.0.1:${port}`))
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
