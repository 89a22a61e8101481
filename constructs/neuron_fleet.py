"""NeuronFleet: the VPC, one launch template + image per instance family, and the Auto Scaling group
that runs the agent image on Trainium/Inferentia."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Annotations, Aws, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from agentfleet.spec import compat, sizing
from agentfleet.spec import metric_names as m
from agentfleet.spec.fleet import FleetConfig

LAUNCH_HOOK = "agentfleet-model-ready"
TERMINATION_HOOK = "agentfleet-drain"
HEALTH_PORT = 8080
DEVICE_GROUP = "neuron"  # a dedicated host group for /dev/neuron*: never gid 0 (root) in the container
DEVICE_GID = 10002
_SPOT = {s.value.lower().replace("_", "-"): s for s in autoscaling.SpotAllocationStrategy}


class NeuronFleet(Construct):
    """Creates `vpc` (private subnets in `availability_zone_ids` if set, S3/DynamoDB gateway endpoints, flow
    logs), `security_group` (no ingress), `role`, `images` (one DockerImageAsset per Dockerfile in use),
    `launch_templates` (one per instance family: its image, engine and tensor-parallel degree; Neuron DLAMI
    from SSM, IMDSv2, encrypted gp3; Capacity Block / reservation when configured) and `group` (one group
    whose overrides carry each family's launch template, lifecycle hooks inline, rolling update that waits
    for each new instance's readiness signal, target tracking on the workers' backlog).

    No SSH key: operators use Session Manager.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: FleetConfig, image_directory: str,
                 runtime_config_parameter: str) -> None:
        super().__init__(scope, construct_id)
        self.vpc = self._vpc(config)
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
        self.container_logs = logs.LogGroup(self, "ContainerLogs", retention=logs.RetentionDays.ONE_MONTH,
                                            removal_policy=RemovalPolicy.DESTROY)
        self.container_logs.grant_write(self.role)
        self.images: dict[str, ecr_assets.DockerImageAsset] = {}
        self.launch_templates: dict[str, ec2.LaunchTemplate] = {}
        for family in config.instance_families:
            self.launch_templates[family] = self._launch_template(config, family, image_directory,
                                                                  runtime_config_parameter)
        self.group = self._group(config)
        self._signal_readiness(config)
        self._hooks(config)
        self._scaling(config)

    def _vpc(self, config: FleetConfig) -> ec2.Vpc:
        # AZ ids (use2-az1) name the same zone in every account, AZ names do not; CloudFormation's
        # AWS::EC2::Subnet takes AvailabilityZoneId, so the ids go straight into the subnets.
        ids = list(config.availability_zone_ids)
        vpc = ec2.Vpc(
            self, "Vpc", max_azs=None if ids else 3, availability_zones=ids or None,
            nat_gateways=1 if config.single_nat_gateway else None,
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
        for subnet in vpc.public_subnets + vpc.private_subnets if ids else []:
            cfn = subnet.node.default_child
            assert isinstance(cfn, ec2.CfnSubnet)
            cfn.add_property_deletion_override("AvailabilityZone")
            cfn.add_property_override("AvailabilityZoneId", subnet.availability_zone)
        return vpc

    def _image(self, dockerfile: str, image_directory: str) -> ecr_assets.DockerImageAsset:
        if dockerfile not in self.images:
            image = ecr_assets.DockerImageAsset(
                self, "AgentImage" if dockerfile == "Dockerfile" else f"AgentImage{dockerfile.split('.')[-1].title()}",
                directory=image_directory, file=dockerfile, platform=ecr_assets.Platform.LINUX_AMD64,
                exclude=["**/__pycache__", "**/*.egg-info", "build", ".pytest_cache"])
            image.repository.grant_pull(self.role)
            self.images[dockerfile] = image
        return self.images[dockerfile]

    def _launch_template(self, config: FleetConfig, family: str, image_directory: str,
                         runtime_config_parameter: str) -> ec2.LaunchTemplate:
        built = compat.image_for(family)
        image = self._image(built["dockerfile"], image_directory)
        template = ec2.LaunchTemplate(
            self, f"LaunchTemplate{family.title()}",
            machine_image=ec2.MachineImage.from_ssm_parameter(config.dlami_ssm_parameter, os=ec2.OperatingSystemType.LINUX),
            role=self.role, security_group=self.security_group,
            require_imdsv2=True, http_put_response_hop_limit=2,  # 2: the container sits one hop behind docker0
            block_devices=[ec2.BlockDevice(device_name="/dev/sda1", volume=ec2.BlockDeviceVolume.ebs(
                config.root_volume_gib, volume_type=ec2.EbsDeviceVolumeType.GP3, encrypted=True,
                delete_on_termination=True))],
            user_data=self._user_data(config, family, built["engine"], image, runtime_config_parameter),
            detailed_monitoring=True,
            # a Capacity Block group has no overrides, so its one type sits in the template
            instance_type=ec2.InstanceType(config.instance_types[0]) if config.capacity_block else None,
        )
        cfn = template.node.default_child
        assert isinstance(cfn, ec2.CfnLaunchTemplate)
        # EC2 API (botocore ec2 service-2.json): MarketType 'capacity-block'; CapacityReservationTarget takes
        # CapacityReservationId or CapacityReservationResourceGroupArn.
        if config.capacity_block:
            cfn.add_property_override("LaunchTemplateData.InstanceMarketOptions", {"MarketType": "capacity-block"})
        target = ({"CapacityReservationId": config.capacity_reservation_id} if config.capacity_reservation_id else
                  {"CapacityReservationResourceGroupArn": config.capacity_reservation_group_arn}
                  if config.capacity_reservation_group_arn else None)
        if target:
            cfn.add_property_override("LaunchTemplateData.CapacityReservationSpecification",
                                      {"CapacityReservationTarget": target})
        return template

    @staticmethod
    def _replicas_env(config: FleetConfig, family: str, engine: str) -> str:
        """`-e AGENTFLEET_REPLICAS=R` when every configured type of the family has the same known replica
        count (logical cores / TP, agentfleet.spec.sizing); otherwise the boot resolves it (IMDS type, else
        neuron-ls). The container starts the R vLLM servers itself, on loopback ports inside it."""
        counts = {sizing.replicas(t, config.tp_for(family), engine) for t in config.instance_types
                  if compat.instance_family(t) == family}
        count = counts.pop() if len(counts) == 1 else None
        return f"-e AGENTFLEET_REPLICAS={count} " if count else ""

    def _user_data(self, config: FleetConfig, family: str, engine: str, image: ecr_assets.DockerImageAsset,
                   runtime_config_parameter: str) -> ec2.UserData:
        region = Stack.of(self).region
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(
            "set -euo pipefail",
            f'IMAGE="{image.image_uri}"',
            'REGISTRY="${IMAGE%%/*}"',
            "command -v docker >/dev/null || { apt-get update -y && apt-get install -y docker.io; }",
            "systemctl enable --now docker",
            f'aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin "$REGISTRY"',
            'docker pull "$IMAGE"',
            # The digest the registry served (image_uri is part of the compile-cache key); the tag if none.
            "IMAGE_REF=\"$(docker image inspect --format '{{index .RepoDigests 0}}' \"$IMAGE\" 2>/dev/null || echo \"$IMAGE\")\"",
            # The image runs as uid 10001. A dedicated host group owns the Neuron devices; the device nodes'
            # own group may be root (gid 0), which must never be handed to the container.
            f"getent group {DEVICE_GROUP} >/dev/null || groupadd --system {DEVICE_GROUP}",
            f'NEURON_GID="$(getent group {DEVICE_GROUP} | cut -d: -f3)"; [ "$NEURON_GID" != 0 ]',
            'DEVICES=(); for dev in /dev/neuron*; do [ -e "$dev" ] || continue; '
            f'chgrp {DEVICE_GROUP} "$dev"; chmod g+rw "$dev"; DEVICES+=("--device=$dev"); done',
            "mkdir -p /var/cache/agentfleet && chown 10001:10001 /var/cache/agentfleet",
            # Flags, aws-neuron-sdk deploy/environments/quickstart-deploy-dlc.rst (SDK 2.32.0): --cap-add IPC_LOCK;
            # NEURON_SKIP_EFA_AFFINITY=1 because the launch template attaches no EFA interface. The quickstart
            # also adds SYS_ADMIN without saying why; left out (a non-root user gets no effective capabilities).
            # --ulimit memlock=-1: locked memory for the non-root user (issue 10 item 5). --shm-size: PyTorch
            # shares tensors between TP workers through /dev/shm, Docker's default is 64 MB (vLLM docs,
            # "Deploying with Docker"). --restart on-failure: a drained container exits 0 and stays stopped.
            # Every /dev/neuron* is passed: the R model replicas (AGENTFLEET_REPLICAS, else resolved at boot)
            # each take their own cores; their vLLM ports stay on the container's loopback (no -p).
            'docker run -d --name agentfleet --restart on-failure "${DEVICES[@]}" --group-add "$NEURON_GID" '
            "--cap-add IPC_LOCK --ulimit memlock=-1 --shm-size 10g "
            f"-p 127.0.0.1:{HEALTH_PORT}:{HEALTH_PORT} --stop-timeout 60 -v /var/cache/agentfleet:/var/cache/agentfleet "
            f"-e AWS_REGION={region} -e AGENTFLEET_CONFIG=ssm:{runtime_config_parameter} "
            f"-e AGENTFLEET_ENGINE={engine} -e AGENTFLEET_TENSOR_PARALLEL_DEGREE={config.tp_for(family)} "
            f"{self._replicas_env(config, family, engine)}"
            '-e AGENTFLEET_IMAGE_URI="$IMAGE_REF" -e NEURON_SKIP_EFA_AFFINITY=1 '
            f"--log-driver awslogs --log-opt awslogs-region={region} "
            f"--log-opt awslogs-group={self.container_logs.log_group_name} \"$IMAGE\"",
        )
        return user_data

    def _signal_readiness(self, config: FleetConfig) -> None:
        """Each new instance signals the rolling update (WaitOnResourceSignals) once /ping is 200, so an update
        replaces the next instance only after this one serves; FAILURE when the launch hook would expire.
        Outside a stack update CloudFormation rejects the signal, hence `|| true`."""
        cfn_group = self.group.node.default_child
        assert isinstance(cfn_group, autoscaling.CfnAutoScalingGroup)
        region, logical_id = Stack.of(self).region, Stack.of(self).get_logical_id(cfn_group)
        for template in self.launch_templates.values():
            assert template.user_data is not None
            template.user_data.add_commands(
                'TOKEN="$(curl -sX PUT http://169.254.169.254/latest/api/token '
                '-H "X-aws-ec2-metadata-token-ttl-seconds: 300")"',
                'INSTANCE_ID="$(curl -s -H "X-aws-ec2-metadata-token: $TOKEN" '
                'http://169.254.169.254/latest/meta-data/instance-id)"',
                f"STATUS=FAILURE; for _ in $(seq 1 {config.launch_hook_timeout_minutes * 4}); do "
                f"if curl -fs http://127.0.0.1:{HEALTH_PORT}/ping >/dev/null; then STATUS=SUCCESS; break; fi; "
                "sleep 15; done",
                f"aws cloudformation signal-resource --region {region} --stack-name {Aws.STACK_NAME} "
                f'--logical-resource-id {logical_id} --unique-id "$INSTANCE_ID" --status "$STATUS" || true')
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["cloudformation:SignalResource"], resources=[Aws.STACK_ID]))

    def _group(self, config: FleetConfig) -> autoscaling.AutoScalingGroup:
        templates = self.launch_templates
        first = templates[config.instance_families[0]]
        if config.capacity_block:
            # Capacity Blocks do not support mixed-instances groups (Auto Scaling user guide, as read for
            # issue 10): one type, one launch template (validated in agentfleet.spec.sizing).
            placement: dict[str, object] = {"launch_template": first}
        else:
            placement = {"mixed_instances_policy": autoscaling.MixedInstancesPolicy(
                launch_template=first,
                # Each override carries its family's launch template: its image, engine and TP degree.
                launch_template_overrides=[autoscaling.LaunchTemplateOverrides(
                    instance_type=ec2.InstanceType(t), launch_template=templates[compat.instance_family(t)])
                    for t in config.instance_types],
                instances_distribution=autoscaling.InstancesDistribution(
                    on_demand_base_capacity=config.on_demand_base_capacity,
                    on_demand_percentage_above_base_capacity=config.on_demand_percentage_above_base,
                    on_demand_allocation_strategy=autoscaling.OnDemandAllocationStrategy.PRIORITIZED,
                    spot_allocation_strategy=_SPOT[config.spot_allocation_strategy] if config.uses_spot else None,
                ),
            )}
        group = autoscaling.AutoScalingGroup(
            self, "Group", vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            min_capacity=config.min_capacity, max_capacity=config.max_capacity,
            desired_capacity=config.desired_capacity,
            capacity_rebalance=True if config.uses_spot else None,  # rebalancing only means something for Spot
            # The launch hook keeps an instance out of service until its model answers, and the grace
            # period starts at InService (Auto Scaling API, HealthCheckGracePeriod), so it can be short.
            health_checks=autoscaling.HealthChecks.ec2(grace_period=Duration.minutes(config.health_check_grace_minutes)),
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1, min_instances_in_service=max(0, min(config.min_capacity, config.max_capacity - 1)),
                wait_on_resource_signals=True, pause_time=Duration.minutes(config.launch_hook_timeout_minutes)),
            group_metrics=[autoscaling.GroupMetrics.all()],
            default_instance_warmup=Duration.minutes(config.default_instance_warmup_minutes),
            **placement,  # type: ignore[arg-type]
        )
        Validations.of(group).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-AS3",
            reason="Scaling events are visible in the fleet dashboard and alarms; no SNS notification per event."))
        Annotations.of(group).acknowledge_warning(
            "@aws-cdk/aws-autoscaling:desiredCapacitySet",
            "desired_capacity is the fleet's deploy-time baseline by design; README says a deploy resets it.")
        Validations.of(group).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-EC26",
            reason="The root volume is encrypted gp3 in each launch template; the rule cannot follow the mixed "
                   "instances policy's reference to it."))
        return group

    def _hooks(self, config: FleetConfig) -> None:
        # Inline in the group (LifecycleHookSpecificationList) so they exist before its first instance;
        # separate AWS::AutoScaling::LifecycleHook resources are created after the group's first instances.
        cfn_group = self.group.node.default_child
        assert isinstance(cfn_group, autoscaling.CfnAutoScalingGroup)
        cfn_group.lifecycle_hook_specification_list = [
            # Launch: Pending:Wait until the model answers (CONTINUE) or the boot fails (ABANDON); the boot
            # heartbeats while downloading and compiling; a silent instance is abandoned at the timeout.
            autoscaling.CfnAutoScalingGroup.LifecycleHookSpecificationProperty(
                lifecycle_hook_name=LAUNCH_HOOK, lifecycle_transition="autoscaling:EC2_INSTANCE_LAUNCHING",
                default_result="ABANDON", heartbeat_timeout=config.launch_hook_timeout_minutes * 60),
            # Terminate: the worker sees target-lifecycle-state=Terminated in IMDS, drains and completes.
            autoscaling.CfnAutoScalingGroup.LifecycleHookSpecificationProperty(
                lifecycle_hook_name=TERMINATION_HOOK, lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                default_result="CONTINUE", heartbeat_timeout=180),
        ]
        # The group's ARN is not known when the role's policy is written (the launch templates depend on
        # the policy), so lifecycle actions and SetInstanceHealth (a fatal error after InService) are
        # scoped by the Fleet tag.
        self.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat",
                     "autoscaling:SetInstanceHealth"],
            resources=["*"], conditions={"StringEquals": {"autoscaling:ResourceTag/Fleet": config.fleet_name}}))
        Validations.of(self.role).acknowledge(Acknowledgment(
            id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken has no resource-level permission; lifecycle completion and instance "
                   "health are limited to groups tagged with this fleet's name."))

    def _scaling(self, config: FleetConfig) -> None:
        # Each worker publishes its own backlog; the fleet-wide Average is backlog per instance.
        backlog = cloudwatch.Metric(namespace=m.NAMESPACE, metric_name=m.BACKLOG_RECORDS,
                                    dimensions_map={m.FLEET: config.fleet_name}, statistic="Average",
                                    period=Duration.minutes(1))
        self.group.scale_to_track_metric("BacklogTracking", metric=backlog,
                                         target_value=config.backlog_target_per_instance)
