# A service rolled out with a canary: a new version first runs one extra instance,
# which must stay healthy for 10s before the rest are replaced, two at a time.
variable "version" {
  type    = string
  default = "1.0"
}

locals {
  port = 8080
}

job "web" {
  type        = "service"
  datacenters = ["*"]

  update {
    max_parallel      = 2
    canary            = 1
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
    auto_promote      = false
  }

  group "web" {
    count = 3

    network {
      port "http" {
        to = local.port
      }
    }

    service {
      name = "web"
      port = "http"
      tags = ["v${var.version}"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "server" {
      driver = "docker"

      config {
        image = "example/web:${var.version}"
        ports = ["http"]
      }

      env {
        VERSION = var.version
        PORT    = "${local.port}"
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
