#!/usr/bin/env sh
# The quickstart: start the example store API on a free port, then validate and run two functions
# against it. Run it through the bootstrap from anywhere:  ./dev examples/quickstart.sh
set -eu
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
python examples/order_api.py --port 0 > "$work/api.log" &
api=$!
trap 'kill $api 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "order API on" "$work/api.log" 2>/dev/null && break; sleep 0.1; done
url="$(sed -n 's/^order API on //p' "$work/api.log")"
[ -n "$url" ] || { echo "the example API did not start" >&2; exit 1; }
# The example functions name http://127.0.0.1:8787; point copies of them at the free port.
for f in examples/functions/*; do sed "s#http://127.0.0.1:8787#$url#g" "$f" > "$work/$(basename "$f")"; done
echo "== the example API is on $url"

echo "== voicefn validate"
voicefn validate "$work/check_order_status.json" "$work/book_appointment.yaml"

echo; echo "== what the LLM sees (OpenAI tools format: no URL, token or template)"
voicefn convert "$work/check_order_status.json" --to openai

echo; echo "== voicefn invoke: the LLM asks for order ORD-78234"
voicefn invoke "$work/check_order_status.json" --args '{"order_id": "ORD-78234"}' \
  --allow-private-network

echo; echo "== voicefn invoke: booking, with a required value missing (nothing is sent)"
voicefn invoke "$work/book_appointment.yaml" --args '{"patient_name": "Priya Sharma"}' \
  --allow-private-network --var agent_id=agent-42 || true

echo; echo "== voicefn invoke: booking, complete"
voicefn invoke "$work/book_appointment.yaml" \
  --args '{"patient_name": "Priya Sharma", "preferred_date": "2026-12-20", "preferred_time": "10:30 AM"}' \
  --allow-private-network --var agent_id=agent-42
