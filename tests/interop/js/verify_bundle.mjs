// Verify a Sigstore bundle (v0.3, DSSE, public key) with Sigstore's own JavaScript
// verifier: node verify_bundle.mjs BUNDLE.json PUBLIC_KEY.pem KEY_HINT
// Prints "verified" and exits 0, or "failed: <why>" and exits 1. No transparency log
// or timestamp is required: a key-based bundle carries neither.
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';

const [bundlePath, keyPath, hint] = process.argv.slice(2);
try {
  const bundle = bundleFromJSON(JSON.parse(readFileSync(bundlePath, 'utf8')));
  const key = createPublicKey(readFileSync(keyPath));
  const root = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [],
  };
  const trust = toTrustMaterial(root, (found) => {
    if (found !== hint) throw new Error(`no trusted key for hint ${found}`);
    return { publicKey: key, validFor: () => true };
  });
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0,
                                         timestampThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));
  console.log('verified');
} catch (error) {
  console.log(`failed: ${error.code ?? ''} ${error.message}`);
  process.exit(1);
}
