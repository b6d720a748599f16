"""The subprocess a timed setting runs in (``machine.spawn``): one training-step setting, or the prediction
table, given as a JSON job; prints its figures as one JSON line."""
import json
import sys

from .predict import predict_table
from .train import step_worker

job = json.loads(sys.argv[1])
kind = job.pop("kind")
print(json.dumps(step_worker(job) if kind == "step" else predict_table(**job)))
