"""Local AWS: moto's server, the stack built from template.yaml, the Lambda workers, and what AWS enforces that
moto does not (IAM, Lambda timeouts, Step Functions' quotas and metering), plus the AWS-side fault profiles.

Kept empty of imports: every Lambda worker process imports `abrecon_sandbox.aws.lambda_worker` at start.
"""
