# Task lifecycle hooks: a prestart task prepares the shared alloc dir, a prestart
# sidecar runs beside the main task, a poststop task runs once the others are done
# (also when the job is stopped).
job "pipeline" {
  type        = "batch"
  datacenters = ["*"]

  group "run" {
    task "fetch" {
      driver = "raw_exec"
      lifecycle {
        hook = "prestart"
      }
      config {
        command = "/bin/sh"
        args    = ["-c", "echo input > ${NOMAD_ALLOC_DIR}/data/input"]
      }
    }

    task "heartbeat" {
      driver = "raw_exec"
      lifecycle {
        hook    = "prestart"
        sidecar = true
      }
      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do date; sleep 1; done"]
      }
    }

    task "work" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "cat ${NOMAD_ALLOC_DIR}/data/input; sleep 2"]
      }
    }

    task "report" {
      driver = "raw_exec"
      lifecycle {
        hook = "poststop"
      }
      config {
        command = "/bin/echo"
        args    = ["pipeline finished"]
      }
    }
  }
}
