// voicefn: compile (never call) a function's code the way worker.js loads it, to find syntax
// errors V8 reports. Runs with every Deno permission off; the code comes on stdin and is only
// handed to the AsyncFunction constructor, which parses it and returns a function nobody calls.
const AsyncFunction = (async function () {}).constructor;
const code = await new Response(Deno.stdin.readable).text();
let out;
try {
  new AsyncFunction("module", "exports", code);
  out = { ok: true };
} catch (err) {
  out = { ok: false, name: String(err?.name ?? "Error"), message: String(err?.message ?? err) };
}
console.log(JSON.stringify(out));
