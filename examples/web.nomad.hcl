# A web service with a group network (Nomad >= 0.12): the scheduler picks a free port
# "http" from the node's dynamic range, and the task serves HTTP on it. The port
# reaches the task as NOMAD_PORT_http (also NOMAD_IP_http, NOMAD_ADDR_http, ...),
# interpolated into its arguments, its template and its service check.
job "website" {
  datacenters = ["*"]
  type        = "service"

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "1s"
  }

  group "web" {
    count = 1

    network {
      port "http" {}
    }

    service {
      name     = "website"
      port     = "http"
      provider = "nomad"

      check {
        type     = "http"
        path     = "/local/index.html"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "server" {
      driver = "raw_exec"

      config {
        command = "python3"
        args    = ["-m", "http.server", "--bind", "${NOMAD_IP_http}", "${NOMAD_PORT_http}"]
      }

      # http.server serves the task directory: this page says where it listens.
      template {
        data        = "served by {{ env \"NOMAD_ALLOC_NAME\" }} on {{ env \"NOMAD_ADDR_http\" }}\n"
        destination = "local/index.html"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
