# The sample job of Nomad's Jobs HTTP API documentation ("Read Job") as a job file:
# a redis cache in docker, with every block the sample's JSON shows.
variable "image" {
  type        = string
  default     = "redis:3.2"
  description = "the redis image to run"
}

job "example" {
  datacenters = ["dc1"]
  type        = "service"
  priority    = 50

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  update {
    stagger      = "10s"
    max_parallel = 1
  }

  meta {
    foo = "bar"
    baz = "pipe"
  }

  group "cache" {
    count = 1

    restart {
      attempts = 10
      interval = "5m"
      delay    = "25s"
      mode     = "delay"
    }

    ephemeral_disk {
      size = 300
    }

    meta {
      foo = "bar"
      baz = "pipe"
    }

    task "redis" {
      driver = "docker"
      user   = "foo-user"

      config {
        image = var.image
        port_map {
          db = 6379
        }
      }

      env {
        foo = "bar"
        baz = "pipe"
      }

      service {
        name = "cache-redis"
        port = "db"
        tags = ["global", "cache"]

        check {
          name     = "alive"
          type     = "tcp"
          interval = "10s"
          timeout  = "2s"
        }
      }

      template {
        source        = "local/config.conf.tpl"
        destination   = "local/config.conf"
        change_mode   = "signal"
        change_signal = "SIGUSR1"
        splay         = "5s"
      }

      resources {
        cpu    = 500
        memory = 256

        network {
          mbits = 10
          port "rpc" {
            static = 25566
          }
          port "db" {}
        }
      }

      meta {
        foo = "bar"
        baz = "pipe"
      }

      kill_timeout = "5s"

      logs {
        max_files     = 10
        max_file_size = 10
      }

      artifact {
        source      = "http://foo.com/artifact.tar.gz"
        destination = "local/"
        options {
          checksum = "md5:c4aa853ad2215426eb7d70a21922e794"
        }
      }
    }
  }
}
