"""The subprocess a timed setting runs in (``machine.spawn``): one training-step setting, or the prediction
table, given as a JSON job; prints its figures as one JSON line (bad input, as a size the model cannot take:
{"error": the line, "bad_input": true}, which the parent raises)."""
import json
import sys

from ..errors import DepthforgeError
from .predict import predict_table
from .train import step_worker

job = json.loads(sys.argv[1])
kind = job.pop("kind")
try:
    out = step_worker(job) if kind == "step" else predict_table(**job)
except DepthforgeError as e:
    out = {"error": str(e), "bad_input": True}
print(json.dumps(out))
