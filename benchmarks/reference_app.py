"""The floor under fuxi-server's P5 figures: the same gunicorn set-up (one
gthread worker, the same threads) serving a Flask app that answers every plugin
call with `{"Err": ""}` and does nothing else, after importing the libraries
fuxi-server's worker must load (openstacksdk, os-brick). What fuxi measures
above this is fuxi's own cost; what this measures is the stack's.

Run by benchmarks/queries.py:

    python -m gunicorn -k gthread --threads 16 -w 1 -b unix:S reference_app:app
"""

import json

from flask import Flask, Response, request

# What fuxi-server's worker cannot do without: it talks to the cloud with
# openstacksdk and attaches with os-brick (loaded at worker start, as fuxi does).
import openstack  # noqa: F401
from os_brick.initiator import connector  # noqa: F401

app = Flask("reference")


@app.post("/<call>")
def answer(call):
    request.get_data(cache=False)
    return Response(json.dumps({"Err": ""}), mimetype="application/vnd.docker.plugins.v1+json")
