# A batch job: runs to completion, three instances, retried on failure.
job "report" {
  type        = "batch"
  datacenters = ["*"]

  group "render" {
    count = 3

    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    task "render" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo rendering part ${NOMAD_ALLOC_INDEX}; sleep 1"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
