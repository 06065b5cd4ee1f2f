// The three Uppy packages the demo page and browser tests use, as one browser ES module.
// Uppy 6 ships ES modules with bare imports and no browser bundle; package.json's postinstall
// bundles this file with esbuild into node_modules/.uppy/uppy.min.mjs.
export { default as Uppy } from "@uppy/core";
export { default as Dashboard } from "@uppy/dashboard";
export { default as AwsS3 } from "@uppy/aws-s3";
