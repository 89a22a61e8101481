"""NeuronFleet: the VPC, launch template and Auto Scaling group that run the agent image on Trainium."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Annotations, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from agentfleet.spec import metric_names as m
from agentfleet.spec.fleet import FleetConfig

LAUNCH_HOOK = "agentfleet-model-ready"
TERMINATION_HOOK = "agentfleet-drain"
HEALTH_PORT = 8080
_SPOT = {s.value.lower().replace("_", "-"): s for s in autoscaling.SpotAllocationStrategy}


class NeuronFleet(Construct):
    """Creates `vpc` (private subnets, S3/DynamoDB gateway endpoints, flow logs), `security_group`
    (no ingress), `role`, `image` (DockerImageAsset of agent_image/), `container_logs`,
    `launch_template` (Neuron DLAMI from SSM at deploy time, IMDSv2, encrypted gp3) and `group`
    (mixed instances, Spot strategy, capacity rebalance, launch and drain lifecycle hooks,
    rolling replacement, target tracking on the workers' backlog).

    No SSH key: operators use Session Manager.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, image_directory: str,
                 runtime_config_parameter: str) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self, "Vpc", max_azs=3,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
            flow_logs={"FlowLogs": ec2.FlowLogOptions(traffic_type=ec2.FlowLogTrafficType.REJECT)},
        )
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=self.vpc, allow_all_outbound=True,
            description="Agent Fleet Kit workers: no ingress (Session Manager), egress for AWS APIs and model hub")
        self.role = iam.Role(
            self, "InstanceRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")],
            description="Agent Fleet Kit worker instances")
        Validations.of(self.role).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
            reason="AmazonSSMManagedInstanceCore is the documented policy for Session Manager, which replaces SSH."))
        self.image = ecr_assets.DockerImageAsset(
            self, "AgentImage", directory=image_directory, platform=ecr_assets.Platform.LINUX_AMD64,
            exclude=["**/__pycache__", "**/*.egg-info", "build", ".pytest_cache"])
        self.image.repository.grant_pull(self.role)
        self.container_logs = logs.LogGroup(self, "ContainerLogs", retention=logs.RetentionDays.ONE_MONTH,
                                            removal_policy=RemovalPolicy.DESTROY)
        self.container_logs.grant_write(self.role)
        self.launch_template = ec2.LaunchTemplate(
            self, "LaunchTemplate",
            machine_image=ec2.MachineImage.from_ssm_parameter(config.dlami_ssm_parameter, os=ec2.OperatingSystemType.LINUX),
            role=self.role, security_group=self.security_group,
            require_imdsv2=True, http_put_response_hop_limit=2,  # 2: the container sits one hop behind docker0
            block_devices=[ec2.BlockDevice(device_name="/dev/sda1", volume=ec2.BlockDeviceVolume.ebs(
                config.root_volume_gib, volume_type=ec2.EbsDeviceVolumeType.GP3, encrypted=True,
                delete_on_termination=True))],
            user_data=self._user_data(runtime_config_parameter),
            detailed_monitoring=True,
        )
        self.group = self._group(config)
        self._hooks(config)
        self._scaling(config)

    def _user_data(self, runtime_config_parameter: str) -> ec2.UserData:
        region = Stack.of(self).region
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(
            "set -euo pipefail",
            f'IMAGE="{self.image.image_uri}"',
            'REGISTRY="${IMAGE%%/*}"',
            "command -v docker >/dev/null || { apt-get update -y && apt-get install -y docker.io; }",
            "systemctl enable --now docker",
            f'aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin "$REGISTRY"',
            'docker pull "$IMAGE"',
            # Every Neuron device goes to the container; none on CPU-only types.
            "DEVICES=(); for dev in /dev/neuron*; do [ -e \"$dev\" ] && DEVICES+=(\"--device=$dev\"); done",
            # The image runs as a non-root user: give it the devices' group.
            'if [ -e /dev/neuron0 ]; then DEVICES+=("--group-add=$(stat -c %g /dev/neuron0)"); fi',
            "mkdir -p /var/cache/agentfleet && chown 10001:10001 /var/cache/agentfleet",  # the image's non-root user
            "docker run -d --name agentfleet --restart unless-stopped \"${DEVICES[@]}\" "
            f"-p {HEALTH_PORT}:{HEALTH_PORT} --stop-timeout 60 -v /var/cache/agentfleet:/var/cache/agentfleet "
            f"-e AWS_REGION={region} -e AGENTFLEET_CONFIG=ssm:{runtime_config_parameter} "
            f"--log-driver awslogs --log-opt awslogs-region={region} "
            f"--log-opt awslogs-group={self.container_logs.log_group_name} \"$IMAGE\"",
        )
        return user_data

    def _group(self, config: FleetConfig) -> autoscaling.AutoScalingGroup:
        group = autoscaling.AutoScalingGroup(
            self, "Group", vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            mixed_instances_policy=autoscaling.MixedInstancesPolicy(
                launch_template=self.launch_template,
                launch_template_overrides=[autoscaling.LaunchTemplateOverrides(instance_type=ec2.InstanceType(t))
                                           for t in config.instance_types],
                instances_distribution=autoscaling.InstancesDistribution(
                    on_demand_base_capacity=config.on_demand_base_capacity,
                    on_demand_percentage_above_base_capacity=config.on_demand_percentage_above_base,
                    on_demand_allocation_strategy=autoscaling.OnDemandAllocationStrategy.PRIORITIZED,
                    spot_allocation_strategy=_SPOT[config.spot_allocation_strategy],
                ),
            ),
            min_capacity=config.min_capacity, max_capacity=config.max_capacity,
            desired_capacity=config.desired_capacity,
            capacity_rebalance=True,
            # A cold compile takes tens of minutes; the launch hook gates service, this only
            # stops EC2 health checks from killing an instance that is still compiling.
            health_checks=autoscaling.HealthChecks.ec2(grace_period=Duration.minutes(config.health_check_grace_minutes)),
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1, min_instances_in_service=max(0, min(config.min_capacity, config.max_capacity - 1)),
                pause_time=Duration.minutes(5)),
            group_metrics=[autoscaling.GroupMetrics.all()],
            default_instance_warmup=Duration.minutes(10),
        )
        Validations.of(group).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-AS3",
            reason="Scaling events are visible in the fleet dashboard and alarms; no SNS notification per event."))
        Annotations.of(group).acknowledge_warning(
            "@aws-cdk/aws-autoscaling:desiredCapacitySet",
            "desired_capacity is the fleet's deploy-time baseline by design; README says a deploy resets it.")
        Validations.of(group).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-EC26",
            reason="The root volume is encrypted gp3 in the launch template; the rule cannot follow the mixed "
                   "instances policy's reference to it."))
        return group

    def _hooks(self, config: FleetConfig) -> None:
        # Launch: the instance stays Pending:Wait until its model answers a probe (CONTINUE)
        # or its compile fails (ABANDON); a silent instance is abandoned at the timeout.
        self.group.add_lifecycle_hook(
            "ModelReadyHook", lifecycle_hook_name=LAUNCH_HOOK,
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_LAUNCHING,
            default_result=autoscaling.DefaultResult.ABANDON,
            heartbeat_timeout=Duration.minutes(min(config.health_check_grace_minutes, 120)))
        # Terminate: the worker sees target-lifecycle-state=Terminated in IMDS, drains and completes.
        self.group.add_lifecycle_hook(
            "DrainHook", lifecycle_hook_name=TERMINATION_HOOK,
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
            default_result=autoscaling.DefaultResult.CONTINUE, heartbeat_timeout=Duration.minutes(3))
        # The group's ARN is not known when the role's policy is written (the launch template
        # depends on the policy), so completing lifecycle actions is scoped by the Fleet tag.
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"],
            resources=["*"], conditions={"StringEquals": {"autoscaling:ResourceTag/Fleet": config.fleet_name}}))
        Validations.of(self.role).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken has no resource-level permission; lifecycle completion is limited "
                   "to groups tagged with this fleet's name."))

    def _scaling(self, config: FleetConfig) -> None:
        # Each worker publishes its own backlog; the fleet-wide Average is backlog per instance.
        backlog = cloudwatch.Metric(namespace=m.NAMESPACE, metric_name=m.BACKLOG_RECORDS,
                                    dimensions_map={m.FLEET: config.fleet_name}, statistic="Average",
                                    period=Duration.minutes(1))
        self.group.scale_to_track_metric("BacklogTracking", metric=backlog,
                                         target_value=config.backlog_target_per_instance)

