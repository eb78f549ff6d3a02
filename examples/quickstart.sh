#!/usr/bin/env sh
# The quickstart: start the example store API, then validate and run two functions against it.
# Run it through the bootstrap from the repository root:  ./dev examples/quickstart.sh
set -eu
cd "$(dirname "$0")/.."
python examples/order_api.py --port 8787 &
api=$!
trap 'kill $api 2>/dev/null' EXIT
sleep 0.5

echo "== voicefn validate"
voicefn validate examples/functions/check_order_status.json examples/functions/book_appointment.yaml

echo; echo "== what the LLM sees (OpenAI tools format: no URL, token or template)"
voicefn convert examples/functions/check_order_status.json --to openai

echo; echo "== voicefn invoke: the LLM asks for order ORD-78234"
voicefn invoke examples/functions/check_order_status.json --args '{"order_id": "ORD-78234"}' \
  --allow-private-network

echo; echo "== voicefn invoke: booking, with a required value missing (nothing is sent)"
voicefn invoke examples/functions/book_appointment.yaml --args '{"patient_name": "Priya Sharma"}' \
  --allow-private-network --var agent_id=agent-42 || true

echo; echo "== voicefn invoke: booking, complete"
voicefn invoke examples/functions/book_appointment.yaml \
  --args '{"patient_name": "Priya Sharma", "preferred_date": "2026-12-20", "preferred_time": "10:30 AM"}' \
  --allow-private-network --var agent_id=agent-42
