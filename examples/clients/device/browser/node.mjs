// Runs the browser example in Node 20+: node node.mjs API KEY [N]
import { runSession } from "./device.js";

const [api, key, n] = process.argv.slice(2);
if (!api || !key) {
  console.error("usage: node node.mjs API KEY [N]");
  process.exit(2);
}
runSession({ api, key, n: Number(n ?? 3) }).catch((err) => {
  console.error(err.message);
  process.exit(1);
});
