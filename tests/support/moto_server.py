"""Starts moto's S3 server on 127.0.0.1 with authentication switched on.

Prints one JSON line {"endpoint", "access_key_id", "secret_access_key"} once it is ready,
then serves until stdin closes or the process is killed. Authentication is on so that tests
can prove a wrong key is refused, as a real S3 service refuses it.
"""

import json
import os
import sys

# The first three requests (create user, access key, policy) run before auth starts.
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"

import boto3  # noqa: E402  (moto must see the environment first)
from moto.server import ThreadedMotoServer  # noqa: E402

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="vbackup-tests")
key = iam.create_access_key(UserName="vbackup-tests")["AccessKey"]
iam.put_user_policy(UserName="vbackup-tests", PolicyName="everything", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
print(json.dumps({"endpoint": endpoint, "access_key_id": key["AccessKeyId"],
                  "secret_access_key": key["SecretAccessKey"]}), flush=True)
try:
    sys.stdin.read()  # returns when the parent closes our stdin or dies
finally:
    server.stop()
