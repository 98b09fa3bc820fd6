"""Prints, as JSON, the client role's identity policy and the backend policy from
the CloudFormation template as CloudFormation would resolve them for the given
parameters, so the Rust test can compare them with the local stack's policies for
the same grants; and the operations resources (alarms, metric filters, access log,
concurrency cap, KMS wiring) resolved the same way.

Usage: cfn_client_role_policy.py TEMPLATE PARTITION REGION ACCOUNT [Param=Value ...]
(CommaDelimitedList values are comma-separated, as on the AWS CLI.)
"""
import json
import re
import sys

from cfnlint.decode import decode

NO_VALUE = object()


class Resolver:
    """Evaluates the intrinsic functions the template's role policy uses."""

    def __init__(self, template, pseudo, overrides):
        self.template = template
        self.refs = dict(pseudo)
        for name, spec in template.get("Parameters", {}).items():
            value = overrides.get(name, spec.get("Default"))
            if value is None:
                continue
            if spec["Type"] == "CommaDelimitedList":
                value = str(value).split(",") if value != "" else [""]
            elif spec["Type"] == "Number":
                # A Number parameter's Ref is a string in CloudFormation.
                value = str(value)
            self.refs[name] = value
        # A resource's Ref stands for itself: its logical ID.
        for name in template.get("Resources", {}):
            self.refs.setdefault(name, name)
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = self.value(self.template["Conditions"][name])
        return self.conditions[name]

    def value(self, node):
        if isinstance(node, list):
            items = [self.value(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.refs[arg]
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.value(arg[1]))
                names = dict(self.refs, **extra)
                # `${Resource.Attr}` stands for itself, as Fn::GetAtt does here.
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(names.get(m.group(1), m.group(1))), text)
            if key == "Fn::Join":
                return arg[0].join(self.value(arg[1]))
            if key == "Fn::Split":
                return self.value(arg[1]).split(arg[0])
            if key == "Fn::Select":
                return self.value(arg[1])[int(self.value(arg[0]))]
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::Or":
                return any(self.value(item) for item in arg)
            if key == "Fn::And":
                return all(self.value(item) for item in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                return ".".join(arg) if isinstance(arg, list) else arg
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        items = {key: self.value(item) for key, item in node.items()}
        return {key: item for key, item in items.items() if item is not NO_VALUE}


def main() -> int:
    path, partition, region, account = sys.argv[1:5]
    overrides = dict(arg.split("=", 1) for arg in sys.argv[5:])
    template, errors = decode(path)
    if errors:
        print(errors, file=sys.stderr)
        return 1
    pseudo = {"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account, "AWS::StackName": "sw"}
    resolver = Resolver(template, pseudo, overrides)
    role = template["Resources"]["ClientRole"]["Properties"]
    (policy,) = [p for p in role["Policies"] if p["PolicyName"] == "iot-client"]
    document = resolver.value(json.loads(json.dumps(policy["PolicyDocument"])))
    backend = template["Resources"]["BackendPolicy"]["Properties"]["PolicyDocument"]
    backend = resolver.value(json.loads(json.dumps(backend)))
    resources = template["Resources"]
    variables = resources["Function"]["Properties"]["Environment"]["Variables"]
    resume = {
        "env": json.loads(json.dumps(variables.get("RESUME_KEY_SECRET_ARN"))),
        "ttl": variables.get("RESUME_TOKEN_TTL_SECONDS", {}).get("Ref"),
        "generated": "GenerateSecretString" in resources["ResumeKeySecret"]["Properties"],
        "read": json.loads(json.dumps(
            resources["FunctionReadResumeKey"]["Properties"]["PolicyDocument"]["Statement"][0])),
    }
    def resolved(name):
        resource = resources[name]
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            return None
        return resolver.value(json.loads(json.dumps(resource.get("Properties", {}))))

    def of_type(kind):
        """The resources of `kind` the parameters create, resolved."""
        found = {n: resolved(n) for n, r in resources.items() if r["Type"] == kind}
        return {n: v for n, v in found.items() if v is not None}

    operations = {
        "alarms": of_type("AWS::CloudWatch::Alarm"),
        "metricFilters": of_type("AWS::Logs::MetricFilter"),
        "logGroups": of_type("AWS::Logs::LogGroup"),
        "stage": resolved("Stage"),
        "function": resolver.value({
            k: json.loads(json.dumps(v)) for k, v in resources["Function"]["Properties"].items()
            if k in ("ReservedConcurrentExecutions", "KmsKeyArn")
        }),
        "kmsPolicy": resolved("FunctionUseKmsKey"),
        "secretKms": resolved("ResumeKeySecret").get("KmsKeyId"),
        "rules": of_type("AWS::IoT::TopicRule"),
        "permissions": of_type("AWS::Lambda::Permission"),
        "ruleErrorRole": resolved("RuleErrorRole"),
        "authorizers": of_type("AWS::IoT::Authorizer"),
        "authorizerFunction": resolved("AuthorizerFunction"),
    }
    print(json.dumps({
        "operations": operations,
        "policy": document,
        "maxSessionDuration": role["MaxSessionDuration"],
        "backendPolicy": backend,
        "resume": resume,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
