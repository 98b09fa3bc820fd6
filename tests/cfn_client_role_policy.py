"""Prints, as JSON, the client role's identity policy from the CloudFormation
template with the pseudo parameters and TopicPrefix substituted, so the Rust test
can compare it with the local stack's default client-role policy.

Usage: cfn_client_role_policy.py TEMPLATE PARTITION REGION ACCOUNT PREFIX
"""
import json
import re
import sys

from cfnlint.decode import decode


def resolve(value, names):
    """Resolves Fn::Sub strings (the only intrinsic the policy uses)."""
    if isinstance(value, dict):
        if list(value) == ["Fn::Sub"]:
            template = value["Fn::Sub"]
            return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], template)
        return {key: resolve(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, names) for item in value]
    return value


def main() -> int:
    path, partition, region, account, prefix = sys.argv[1:6]
    template, errors = decode(path)
    if errors:
        print(errors, file=sys.stderr)
        return 1
    role = template["Resources"]["ClientRole"]["Properties"]
    (policy,) = [p for p in role["Policies"] if p["PolicyName"] == "iot-client"]
    names = {"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account, "TopicPrefix": prefix}
    document = json.loads(json.dumps(resolve(policy["PolicyDocument"], names)))
    print(json.dumps({"policy": document, "maxSessionDuration": role["MaxSessionDuration"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
