"""HCL job files to the API's job (server/jobspec/hcl*.py): every jobspec block,
variables and expressions, and errors that name the line and what was expected."""
from __future__ import annotations

import pytest

from caravan.server.jobspec.hcl import JobFileError, parse_job
from caravan.server.jobspec.hcl_blocks import go_duration_ns

S = 1_000_000_000


def job(body: str = "", **kw) -> dict:
    return parse_job(f'job "j" {{\n{body}\n}}\n', **kw)


def task(body: str) -> dict:
    return job(f'group "g" {{\n task "t" {{\n{body}\n }}\n}}')["TaskGroups"][0]["Tasks"][0]


def error(text: str, **kw) -> str:
    with pytest.raises(JobFileError) as info:
        parse_job(text, **kw)
    return str(info.value)


def test_an_empty_job_has_its_label_as_id_and_name_and_nothing_else():
    assert parse_job('job "example" {}') == {"ID": "example", "Name": "example"}
    assert job('name = "other"')["Name"] == "other"


def test_job_level_arguments_and_blocks():
    j = job('''
      region = "eu"
      namespace = "ops"
      type = "batch"
      priority = 70
      all_at_once = true
      datacenters = ["dc1", "dc2"]
      node_pool = "gpu"
      meta { team = "infra" }
      constraint {
        attribute = "${attr.kernel.name}"
        value = "linux"
      }
      constraint {
        attribute = "${meta.rack}"
        operator = "!="
        value = "r1"
      }
      update {
        stagger = "30s"
        max_parallel = 2
      }
    ''')
    assert j["Region"] == "eu" and j["Namespace"] == "ops" and j["Type"] == "batch"
    assert j["Priority"] == 70 and j["AllAtOnce"] is True and j["NodePool"] == "gpu"
    assert j["Datacenters"] == ["dc1", "dc2"] and j["Meta"] == {"team": "infra"}
    assert j["Constraints"] == [
        {"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="},
        {"LTarget": "${meta.rack}", "RTarget": "r1", "Operand": "!="}]
    assert j["Update"] == {"Stagger": 30 * S, "MaxParallel": 2}


def test_constraint_shorthands():
    j = job('''
      constraint { distinct_hosts = true }
      constraint { distinct_property = "${meta.rack}" }
      constraint {
        attribute = "${attr.os.version}"
        version = ">= 20.04"
      }
      constraint {
        attribute = "${attr.unique.hostname}"
        regexp = "^web"
      }
    ''')
    assert j["Constraints"] == [
        {"Operand": "distinct_hosts"},
        {"LTarget": "${meta.rack}", "Operand": "distinct_property"},
        {"LTarget": "${attr.os.version}", "RTarget": ">= 20.04", "Operand": "version"},
        {"LTarget": "${attr.unique.hostname}", "RTarget": "^web", "Operand": "regexp"}]
    assert "Conflicting constraint" in error(
        'job "j" {\n constraint {\n  operator = "="\n  regexp = "x"\n }\n}')


def test_group_blocks():
    g = job('''
      group "cache" {
        count = 3
        restart {
          attempts = 10
          interval = "5m"
          delay = "25s"
          mode = "delay"
        }
        reschedule {
          attempts = 1
          interval = "1h"
          unlimited = false
        }
        ephemeral_disk {
          sticky = true
          size = 500
          migrate = true
        }
        update {
          canary = 1
          max_parallel = 1
          min_healthy_time = "10s"
          healthy_deadline = "3m"
          progress_deadline = "10m"
          auto_revert = true
          auto_promote = true
          health_check = "checks"
        }
        network {
          mode = "bridge"
          hostname = "cache-1"
          port "http" { to = 8080 }
          port "admin" {
            static = 9000
            host_network = "private"
          }
        }
        service {
          name = "web"
          port = "http"
          tags = ["a"]
          canary_tags = ["c"]
          meta { version = "1" }
          check {
            name = "alive"
            type = "http"
            path = "/health"
            port = "http"
            interval = "10s"
            timeout = "2s"
            header { X-Probe = ["1"] }
          }
        }
        meta = { tier = "front" }
      }
    ''')["TaskGroups"][0]
    assert g["Name"] == "cache" and g["Count"] == 3 and g["Meta"] == {"tier": "front"}
    assert g["RestartPolicy"] == {"Attempts": 10, "Interval": 300 * S, "Delay": 25 * S,
                                  "Mode": "delay"}
    assert g["ReschedulePolicy"] == {"Attempts": 1, "Interval": 3600 * S, "Unlimited": False}
    assert g["EphemeralDisk"] == {"Sticky": True, "SizeMB": 500, "Migrate": True}
    assert g["Update"] == {"Canary": 1, "MaxParallel": 1, "MinHealthyTime": 10 * S,
                           "HealthyDeadline": 180 * S, "ProgressDeadline": 600 * S,
                           "AutoRevert": True, "AutoPromote": True, "HealthCheck": "checks"}
    assert g["Networks"] == [{"Mode": "bridge", "Hostname": "cache-1",
                              "DynamicPorts": [{"Label": "http", "To": 8080}],
                              "ReservedPorts": [{"Label": "admin", "Value": 9000,
                                                 "HostNetwork": "private"}]}]
    (svc,) = g["Services"]
    assert svc["Name"] == "web" and svc["PortLabel"] == "http" and svc["Tags"] == ["a"]
    assert svc["CanaryTags"] == ["c"] and svc["Meta"] == {"version": "1"}
    assert svc["Checks"] == [{"Name": "alive", "Type": "http", "Path": "/health",
                              "PortLabel": "http", "Interval": 10 * S, "Timeout": 2 * S,
                              "Header": {"X-Probe": ["1"]}}]


def test_task_blocks():
    t = task('''
      driver = "docker"
      user = "nobody"
      kill_timeout = "20s"
      kill_signal = "SIGINT"
      leader = true
      config {
        image = "redis:7"
        args = ["--port", 6379]
        port_map { db = 6379 }
        mount {
          type = "bind"
          target = "/data"
        }
      }
      env { A = "1" }
      meta { m = 2 }
      resources {
        cpu = 500
        memory = 256
        memory_max = 512
        network {
          mbits = 10
          port "db" {}
        }
      }
      logs {
        max_files = 3
        max_file_size = 5
      }
      artifact {
        source = "https://example.com/a.tgz"
        destination = "local/a"
        mode = "dir"
        options { checksum = "md5:abc" }
      }
      template {
        data = "x={{ key \\"x\\" }}"
        destination = "local/x"
        change_mode = "signal"
        change_signal = "SIGHUP"
        splay = "3s"
        perms = "0600"
        left_delimiter = "[["
        right_delimiter = "]]"
        env = true
      }
      vault {
        policies = ["read"]
        change_mode = "noop"
      }
      dispatch_payload { file = "input.json" }
      lifecycle {
        hook = "prestart"
        sidecar = false
      }
    ''')
    assert t["Name"] == "t" and t["Driver"] == "docker" and t["User"] == "nobody"
    assert t["KillTimeout"] == 20 * S and t["KillSignal"] == "SIGINT" and t["Leader"] is True
    assert t["Config"] == {"image": "redis:7", "args": ["--port", 6379],
                           "port_map": [{"db": 6379}],
                           "mount": [{"type": "bind", "target": "/data"}]}
    assert t["Env"] == {"A": "1"} and t["Meta"] == {"m": "2"}
    assert t["Resources"] == {"CPU": 500, "MemoryMB": 256, "MemoryMaxMB": 512,
                              "Networks": [{"MBits": 10,
                                            "DynamicPorts": [{"Label": "db"}]}]}
    assert t["LogConfig"] == {"MaxFiles": 3, "MaxFileSizeMB": 5}
    assert t["Artifacts"] == [{"GetterSource": "https://example.com/a.tgz",
                               "RelativeDest": "local/a", "GetterMode": "dir",
                               "GetterOptions": {"checksum": "md5:abc"}}]
    assert t["Templates"] == [{"EmbeddedTmpl": 'x={{ key "x" }}', "DestPath": "local/x",
                               "ChangeMode": "signal", "ChangeSignal": "SIGHUP",
                               "Splay": 3 * S, "Perms": "0600", "LeftDelim": "[[",
                               "RightDelim": "]]", "Envvars": True}]
    assert t["Vault"] == {"Policies": ["read"], "ChangeMode": "noop"}
    assert t["DispatchPayload"] == {"File": "input.json"}
    assert t["Lifecycle"] == {"Hook": "prestart", "Sidecar": False}


def test_group_volumes_and_task_volume_mounts():
    j = job('''
      group "g" {
        volume "data" {
          type      = "host"
          source    = "shared-data"
          read_only = true
        }
        volume "scratch" {
          type   = "host"
          source = "scratch"
        }
        task "t" {
          driver = "raw_exec"
          volume_mount {
            volume      = "data"
            destination = "/srv/data"
            read_only   = true
          }
          volume_mount {
            volume      = "scratch"
            destination = "tmp/scratch"
          }
        }
      }
    ''')
    g = j["TaskGroups"][0]
    assert g["Volumes"] == {
        "data": {"Name": "data", "Type": "host", "Source": "shared-data", "ReadOnly": True},
        "scratch": {"Name": "scratch", "Type": "host", "Source": "scratch"}}
    assert g["Tasks"][0]["VolumeMounts"] == [
        {"Volume": "data", "Destination": "/srv/data", "ReadOnly": True},
        {"Volume": "scratch", "Destination": "tmp/scratch"}]


def test_periodic_and_parameterized():
    j = job('''
      periodic {
        cron = "*/5 * * * *"
        prohibit_overlap = true
        time_zone = "Europe/Paris"
      }
      parameterized {
        payload = "required"
        meta_required = ["a"]
        meta_optional = ["b"]
      }
    ''')
    assert j["Periodic"] == {"Spec": "*/5 * * * *", "SpecType": "cron",
                             "ProhibitOverlap": True, "TimeZone": "Europe/Paris"}
    assert j["ParameterizedJob"] == {"Payload": "required", "MetaRequired": ["a"],
                                     "MetaOptional": ["b"]}


def test_variables_defaults_given_values_and_types():
    text = '''
      variable "image" { default = "redis:6" }
      variable "replicas" {
        type = number
        default = 1
      }
      variable "dcs" { type = list(string) }
      job "j" {
        datacenters = var.dcs
        group "g" {
          count = var.replicas
          task "t" {
            driver = "docker"
            config { image = "${var.image}-alpine" }
          }
        }
      }
    '''
    j = parse_job(text, 'replicas = "3"\ndcs = ["a", "b"]')
    assert j["Datacenters"] == ["a", "b"] and j["TaskGroups"][0]["Count"] == 3
    assert j["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "redis:6-alpine"
    j = parse_job(text, {"dcs": ["c"], "image": "nginx"})
    assert j["TaskGroups"][0]["Count"] == 1
    assert j["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "nginx-alpine"
    assert 'variable "dcs" has no default' in error(text)
    assert 'declares no variable "nope"' in error(text, variables='dcs = []\nnope = 1')
    assert 'variable "replicas": number required' in error(
        text, variables='dcs = []\nreplicas = "many"')


def test_expressions_locals_functions_and_runtime_references():
    j = parse_job('''
      variable "n" { default = 2 }
      locals {
        name = "web-${var.n * 2}"
        tags = [for i in range(var.n) : "t${i}"]
      }
      job "j" {
        meta {
          name = local.name
          up = upper("x")
          joined = join(",", local.tags)
          cond = var.n > 1 ? "many" : "one"
          fmt = format("%s-%03d", "id", 7)
          node = "${node.unique.name}"
          escaped = "$${not_interpolated}"
          merged = lookup(merge({a = "1"}, {b = "2"}), "b", "none")
        }
        group "g" {
          task "t" {
            driver = "raw_exec"
            env {
              ALLOC = "${NOMAD_ALLOC_ID}"
              BARE = attr.kernel.name
            }
            template {
              destination = "local/conf"
              data = <<-EOT
                name=${local.name}
                host={{ env "HOSTNAME" }} ${attr.unique.hostname}
                EOT
            }
          }
        }
      }
    ''')
    assert j["Meta"] == {"name": "web-4", "up": "X", "joined": "t0,t1", "cond": "many",
                         "fmt": "id-007", "node": "${node.unique.name}",
                         "escaped": "${not_interpolated}", "merged": "2"}
    t = j["TaskGroups"][0]["Tasks"][0]
    assert t["Env"] == {"ALLOC": "${NOMAD_ALLOC_ID}", "BARE": "${attr.kernel.name}"}
    assert t["Templates"][0]["EmbeddedTmpl"] == \
        'name=web-4\nhost={{ env "HOSTNAME" }} ${attr.unique.hostname}\n'


def test_durations():
    assert go_duration_ns("1m30s") == 90 * S
    assert go_duration_ns("250ms") == 250_000_000
    assert go_duration_ns("1.5h") == 5400 * S
    assert go_duration_ns("0") == 0
    assert go_duration_ns("5 min") is None and go_duration_ns("10") is None


@pytest.mark.parametrize("text, expected", [
    ('job "j" {\n  group "g" {\n    count = \n  }\n}\n',
     "input.hcl:4,3: Invalid syntax; unexpected '}', expected a value (a string"),
    ('job "j" {\n  datacenter = ["dc1"]\n}\n',
     'input.hcl:2,3: Unsupported argument; an argument named "datacenter" is not expected '
     'in job "j"'),
    ('job "j" {\n  group "g" {\n    task "t" {\n      resources {\n        memroy = 1\n'
     '      }\n    }\n  }\n}\n',
     'input.hcl:5,9: Unsupported argument; an argument named "memroy" is not expected in '
     'job "j" > group "g" > task "t" > resources'),
    ('job "j" {\n  group "g" {\n    count = -1\n  }\n}\n',
     'input.hcl:3,5: Invalid value; count in job "j" > group "g": must not be negative, got -1'),
    ('job "j" {\n  group "g" {\n    task "t" {\n      resources {\n        memory = "lots"\n'
     '      }\n    }\n  }\n}\n',
     'input.hcl:5,9: Incorrect attribute value type; memory in job "j" > group "g" > task "t" '
     '> resources: expected a whole number, got "lots"'),
    ('job "j" {\n  group "g" {\n    restart {\n      delay = "5 sec"\n    }\n  }\n}\n',
     'input.hcl:4,7: Invalid duration; delay in job "j" > group "g" > restart: "5 sec" is '
     'not a duration'),
    ('job "j" {\n  update {}\n  update {}\n}\n',
     'input.hcl:3,3: Duplicate block; only one "update" block is allowed in job "j"'),
    ('job "j" {\n  groop "g" {}\n}\n',
     'input.hcl:2,3: Unsupported block type; blocks of type "groop" are not expected in job "j"'),
    ('job "j" {\n  group {}\n}\n', 'input.hcl:2,3: Missing name for group'),
    ('job "a" {}\njob "b" {}\n', "input.hcl:2,1: Invalid job file; expected exactly one job"),
    ('variable "x" {}\n', "Invalid job file; expected exactly one job block, found none"),
    ('job "j" {\n  meta { a = var.nope }\n}\n',
     'input.hcl:2,17: Reference to undeclared input variable; an input variable named "nope"'),
    ('job "j" {\n  meta { a = nofunc(1) }\n}\n',
     'Call to unknown function; there is no function named "nofunc"'),
    ('job "j" {\n  priority = attr.x + 1\n}\n', "Unknown value in an expression"),
])
def test_errors_name_the_position_and_what_was_expected(text, expected):
    assert expected in error(text)


def test_the_file_name_is_used_in_errors():
    with pytest.raises(JobFileError, match=r"^web.nomad.hcl:1,11"):
        parse_job('job "j" { bogus = 1 }', filename="web.nomad.hcl")


def test_group_scaling_block_with_a_free_form_policy():
    g = job('''
      group "g" {
        scaling {
          enabled = false
          min     = 2
          max     = 10
          type    = "horizontal"
          policy {
            cooldown            = "1m"
            evaluation_interval = "30s"
            check "avg_cpu" {
              source = "prometheus"
              query  = "avg(cpu)"
              strategy "target-value" {
                target = 70
              }
            }
          }
        }
      }''')["TaskGroups"][0]
    assert g["Scaling"] == {
        "Enabled": False, "Min": 2, "Max": 10, "Type": "horizontal",
        "Policy": {"cooldown": "1m", "evaluation_interval": "30s",
                   "check": [{"avg_cpu": [{"source": "prometheus", "query": "avg(cpu)",
                                           "strategy": [{"target-value": [{"target": 70}]}]}]}]}}
    assert "Unsupported argument" in error('job "j" {\n group "g" {\n scaling {\n mni = 1\n }\n }\n}\n')
    assert "only one" in error('job "j" {\n group "g" {\n scaling {}\n scaling {}\n }\n}\n')


def test_a_job_level_migrate_block_is_the_jobs_migrate():
    assert job('migrate {\n max_parallel = 2\n health_check = "task_states"\n'
               ' min_healthy_time = "10s"\n healthy_deadline = "5m"\n}')["Migrate"] == {
        "MaxParallel": 2, "HealthCheck": "task_states", "MinHealthyTime": 10 * S,
        "HealthyDeadline": 300 * S}
