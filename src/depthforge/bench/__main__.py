"""The subprocess a timed setting runs in (``machine.spawn``): one training-step setting, one model's profile,
one model on the device path, or the prediction table, given as a JSON job; prints its figures as one JSON line
(bad input, as a size the model cannot take: {"error": the line, "bad_input": true}, which the parent raises)."""
import json
import sys

from ..errors import DepthforgeError

job = json.loads(sys.argv[1])
kind = job.pop("kind")
if kind == "step":
    from .train import step_worker as work
elif kind == "profile":
    from .profile import profile_worker as work
elif kind == "device":
    from .device import device_worker as work
else:
    from .predict import predict_table

    def work(job):
        return predict_table(**job)
try:
    out = work(job)
except DepthforgeError as e:
    out = {"error": str(e), "bad_input": True}
print(json.dumps(out))
