# A parameterized job: does nothing until dispatched with a payload and metadata
# (caravan job dispatch -meta customer=acme invoice - < order.json).
job "invoice" {
  type        = "batch"
  datacenters = ["*"]

  parameterized {
    payload       = "required"
    meta_required = ["customer"]
    meta_optional = ["priority"]
  }

  group "invoice" {
    task "generate" {
      driver = "raw_exec"

      dispatch_payload {
        file = "order.json"
      }

      config {
        command = "/bin/cat"
        args    = ["local/order.json"]
      }

      env {
        CUSTOMER = "${NOMAD_META_customer}"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
