#!/usr/bin/env bash
# Build, deploy, smoke-test and tear down serverless-websockets in your AWS account.
#
#   cloudformation/deploy.sh build
#       cargo lambda build --release --arm64 --output-format zip -p serverless-websockets-vending
#       and the same for -p serverless-websockets-authorizer (the JWT custom authorizer)
#       -> target/lambda/serverless-websockets-vending/bootstrap.zip (the vending crate alone:
#          none of the local stack's emulators is in it)
#   cloudformation/deploy.sh deploy --stack NAME --bucket BUCKET [--iot-endpoint HOST] [--zip PATH] [--authorizer] [Param=Value ...]
#       uploads the zip to s3://BUCKET/serverless-websockets/bootstrap-<sha>.zip (with
#       --authorizer also the JWT custom authorizer's, as AuthorizerCodeS3Key) and
#       runs `aws cloudformation deploy` with the parameters; prints the outputs
#   cloudformation/deploy.sh smoke --stack NAME [--token JWT]
#       POSTs to the deployed API, connects client-example, publishes with
#       `aws iot-data publish` and waits for the message to arrive
#   cloudformation/deploy.sh destroy --stack NAME
#
# Needs: cargo-lambda (pip install cargo-lambda, brings zig), the rustup target
# aarch64-unknown-linux-gnu, the AWS CLI with credentials for the target account,
# curl and python3. Extra arguments to `deploy` are CloudFormation parameter
# overrides, e.g. AuthMode=jwt JwtIssuer=https://… SubscribeTopics=allowed/{clientId},users/{sub};
# the client role's bounds (ClientRole*Patterns) are derived from the topic templates.
set -euo pipefail
cd "$(dirname "$0")/.."

ZIP="${CARGO_TARGET_DIR:-target}/lambda/serverless-websockets-vending/bootstrap.zip"
AUTHORIZER_ZIP="${CARGO_TARGET_DIR:-target}/lambda/serverless-websockets-authorizer/bootstrap.zip"
TEMPLATE=cloudformation/template.yaml

die() { echo "deploy.sh: $*" >&2; exit 1; }

stack_output() {
  aws cloudformation describe-stacks --stack-name "$1" \
    --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text
}

role_patterns() {
  python3 - "$1" <<'PY'
import re, sys
templates = [t.strip() for t in sys.argv[1].split(",") if t.strip()]
def pattern(template):
    return "/".join("*" if level in ("+", "#") else re.sub(r"\{(clientId|sub|claims\.[^}]+)\}", "*", level) for level in template.split("/"))
print(",".join(pattern(t) for t in templates))
PY
}

build() {
  command -v cargo-lambda >/dev/null || die "cargo-lambda is not installed (pip install cargo-lambda)"
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
  local started=$SECONDS
  cargo lambda build --profile deploy --arm64 --output-format zip -p serverless-websockets-vending --bin serverless-websockets-vending
  [ -f "$ZIP" ] || die "expected $ZIP after the build"
  echo "built $ZIP: $(stat -c %s "$ZIP") bytes in $((SECONDS - started)) s"
  started=$SECONDS
  cargo lambda build --profile deploy --arm64 --output-format zip -p serverless-websockets-authorizer --bin serverless-websockets-authorizer
  [ -f "$AUTHORIZER_ZIP" ] || die "expected $AUTHORIZER_ZIP after the build"
  echo "built $AUTHORIZER_ZIP: $(stat -c %s "$AUTHORIZER_ZIP") bytes in $((SECONDS - started)) s"
}

# Uploads a zip under its content hash; prints the key.
upload() {
  local zip=$1 bucket=$2 name=$3 key
  key="serverless-websockets/$name-$(sha256sum "$zip" | cut -c1-16).zip"
  aws s3 cp --only-show-errors "$zip" "s3://$bucket/$key"
  echo "$key"
}

deploy() {
  local stack="" bucket="" endpoint="" zip=$ZIP with_authorizer="" overrides=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --stack) stack=$2; shift 2 ;;
      --authorizer) with_authorizer=1; shift ;;
      --bucket) bucket=$2; shift 2 ;;
      --iot-endpoint) endpoint=$2; shift 2 ;;
      --zip) zip=$2; shift 2 ;;
      *=*) overrides+=("$1"); shift ;;
      *) die "unknown argument $1" ;;
    esac
  done
  [ -n "$stack" ] || die "deploy needs --stack NAME"
  [ -n "$bucket" ] || die "deploy needs --bucket BUCKET (an S3 bucket in the stack's region)"
  # The template's parameters without a default, checked before the build and
  # the upload (CloudFormation would refuse them only after both). An update of
  # a stack that has them already may leave them out.
  local has_auth="" override
  for override in "${overrides[@]}"; do
    case "$override" in AuthMode=jwt|AuthMode=none) has_auth=1 ;; AuthMode=*) die "AuthMode must be jwt or none, not ${override#AuthMode=}" ;; esac
  done
  if [ -z "$has_auth" ] && ! aws cloudformation describe-stacks --stack-name "$stack" >/dev/null 2>&1; then
    die "deploy needs AuthMode=jwt (with JwtIssuer=… and JwtJwksUrl=… or JwtHs256SecretArn=…) or AuthMode=none (anyone who can reach the API gets credentials): choose deliberately"
  fi
  if [ ! -f "$zip" ] || { [ -n "$with_authorizer" ] && [ ! -f "$AUTHORIZER_ZIP" ]; }; then
    [ "$zip" = "$ZIP" ] || [ -f "$zip" ] || die "no zip at $zip"
    build
  fi
  if [ -z "$endpoint" ]; then
    endpoint=$(aws iot describe-endpoint --endpoint-type iot:Data-ATS --query endpointAddress --output text)
  fi
  # The client role's upper bound follows the grant templates: every {clientId},
  # {sub}, + and # becomes * (the same rule as GrantTemplate::role_pattern).
  local subscribe="allowed/{clientId}" publish=""
  for override in "${overrides[@]}"; do
    case "$override" in
      SubscribeTopics=*) subscribe=${override#SubscribeTopics=} ;;
      PublishTopics=*) publish=${override#PublishTopics=} ;;
    esac
  done
  overrides+=("ClientRoleSubscribePatterns=$(role_patterns "$subscribe")" "ClientRolePublishPatterns=$(role_patterns "$publish")")
  local key
  key=$(upload "$zip" "$bucket" bootstrap)
  if [ -n "$with_authorizer" ]; then
    overrides+=("AuthorizerCodeS3Key=$(upload "$AUTHORIZER_ZIP" "$bucket" authorizer)")
  fi
  # The template is over CloudFormation's 51,200-byte limit for an inline body:
  # the CLI uploads it to the same bucket as the code.
  aws cloudformation deploy --template-file "$TEMPLATE" --stack-name "$stack" \
    --s3-bucket "$bucket" --s3-prefix serverless-websockets/templates \
    --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "IotEndpoint=$endpoint" "CodeS3Bucket=$bucket" "CodeS3Key=$key" "${overrides[@]}"
  aws cloudformation describe-stacks --stack-name "$stack" --query "Stacks[0].Outputs" --output table
}

smoke() {
  [ "${1:-}" = "--stack" ] && [ -n "${2:-}" ] || die "smoke needs --stack NAME [--token JWT]"
  local stack=$2 token="" url body client_id topic endpoint log auth=() client_auth=()
  [ "${3:-}" = "--token" ] && token=${4:-}
  if [ -n "$token" ]; then auth=(-H "Authorization: Bearer $token"); client_auth=(--token "$token"); fi
  url=$(stack_output "$stack" CredentialsUrl)
  echo "POST $url"
  body=$(curl -sf -X POST "${auth[@]}" "$url") || die "the credentials API did not answer 200"
  client_id=$(printf '%s' "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
  echo "curl: got credentials for client $client_id"

  log=$(mktemp)
  cargo run --release -q -p client-example -- --api "$url" "${client_auth[@]}" --count 1 --json >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 60); do
    grep -q '"event":"subscribed"' "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; die "client-example exited before subscribing"; }
    sleep 1
  done
  topic=$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "subscribed": print(e["topics"][0]); break' "$log")
  [ -n "$topic" ] || die "client-example did not subscribe within 60 s"
  endpoint=$(aws lambda get-function-configuration --function-name "$(stack_output "$stack" FunctionName)" \
    --query Environment.Variables.IOT_ENDPOINT --output text)
  aws iot-data publish --endpoint-url "https://$endpoint" --topic "$topic" \
    --cli-binary-format raw-in-base64-out --payload '"smoke test"' 2>/dev/null \
    || aws iot-data publish --endpoint-url "https://$endpoint" --topic "$topic" --payload '"smoke test"'
  wait "$pid" || { cat "$log"; die "client-example did not receive the message"; }
  grep '"event":"message"' "$log"
  echo "smoke test passed"
}

destroy() {
  [ "${1:-}" = "--stack" ] && [ -n "${2:-}" ] || die "destroy needs --stack NAME"
  aws cloudformation delete-stack --stack-name "$2"
  aws cloudformation wait stack-delete-complete --stack-name "$2"
  echo "deleted stack $2 (the uploaded zip stays in your bucket)"
}

case "${1:-}" in
  build) shift; build "$@" ;;
  deploy) shift; deploy "$@" ;;
  smoke) shift; smoke "$@" ;;
  destroy) shift; destroy "$@" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
