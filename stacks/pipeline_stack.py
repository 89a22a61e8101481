"""PipelineStack (optional, `enable_pipeline=true`): CDK Pipelines that test, synthesize and deploy the fleet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
from aws_cdk import pipelines
from constructs import Construct

from agentfleet.spec.fleet import FleetConfig


class FleetStage(cdk.Stage):
    """The fleet's stacks as one deployable stage of the pipeline."""

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig,
                 build_stacks: Callable[[Construct, FleetConfig], dict[str, cdk.Stack]], **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stacks = build_stacks(self, config)


class PipelineStack(cdk.Stack):
    """Source (CodeStar connection) -> synth step running README's test command -> self-mutate -> deploy."""

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig,
                 build_stacks: Callable[[Construct, FleetConfig], dict[str, cdk.Stack]], **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description=f"Agent Fleet Kit {config.fleet_name}: CI/CD pipeline",
                         **kwargs)
        source = pipelines.CodePipelineSource.connection(
            config.pipeline_repository, config.pipeline_branch, connection_arn=config.pipeline_connection_arn)
        self.pipeline = pipelines.CodePipeline(
            self, "Pipeline",
            synth=pipelines.ShellStep(
                "Synth", input=source,
                install_commands=["make setup"],
                # `make test` synthesizes with the pinned CLI, runs cfn-lint, the nag gate and pytest.
                commands=["make test"],
                primary_output_directory="cdk.out"),
            cross_account_keys=True, enable_key_rotation=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=cdk.aws_codebuild.BuildEnvironment(
                    build_image=cdk.aws_codebuild.LinuxBuildImage.STANDARD_7_0,
                    compute_type=cdk.aws_codebuild.ComputeType.MEDIUM)),
        )
        self.pipeline.add_stage(FleetStage(self, "Deploy", config=config, build_stacks=build_stacks))
        self.pipeline.build_pipeline()
        self._acknowledge_generated_roles()

    def _acknowledge_generated_roles(self) -> None:
        """CDK Pipelines writes these roles itself; each group of findings has one cause."""
        iam5 = "AwsSolutions::AwsSolutions-IAM5"
        region_account = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>"
        projects = [self.resolve(self.get_logical_id(c)) for c in self.pipeline.node.find_all()
                    if isinstance(c, cdk.aws_codebuild.CfnProject)]
        artifacts = self.resolve(self.get_logical_id(self.pipeline.pipeline.artifact_bucket.node.default_child))
        groups = {
            "The pipeline's artifact bucket and its KMS key, granted by CDK Pipelines to its own build roles.": [
                *(f"{iam5}[Action::{a}]" for a in ("kms:GenerateDataKey*", "kms:ReEncrypt*", "s3:Abort*",
                                                  "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*")),
                f"{iam5}[Resource::<{artifacts}.Arn>/*]"],
            "CodeBuild log groups and report groups are named after each build project at run time.": [
                f"{iam5}[Resource::{region_account.format(service='codebuild')}:report-group/*]",
                f"{iam5}[Resource::{region_account.format(service='logs')}:log-group:/aws/codebuild/*]",
                *(f"{iam5}[Resource::{region_account.format(service='codebuild')}:report-group/<{p}>-*]" for p in projects),
                *(f"{iam5}[Resource::{region_account.format(service='logs')}:log-group:/aws/codebuild/<{p}>:*]"
                  for p in projects)],
            "Self-mutation and asset publishing assume the CDK bootstrap roles (role/*) and list them (Resource *).": [
                f"{iam5}[Resource::arn:*:iam::<AWS::AccountId>:role/*]", f"{iam5}[Resource::*]"],
            "The artifact bucket holds only transient build artifacts; CloudTrail data events cover access.": [
                "AwsSolutions::AwsSolutions-S1"],
        }
        cdk.Validations.of(self.pipeline).acknowledge(
            *(cdk.Acknowledgment(id=rule, reason=reason) for reason, rules in groups.items() for rule in rules))
