# A periodic batch job: launched every fifteen minutes, never two at once.
job "cleanup" {
  type        = "batch"
  datacenters = ["*"]

  periodic {
    cron             = "*/15 * * * *"
    prohibit_overlap = true
    time_zone        = "UTC"
  }

  group "sweep" {
    task "sweep" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo sweeping old files"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
