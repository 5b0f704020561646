// The explicit list of built-in drivers. A new driver is added here and
// nowhere else: one folder under src/drivers/, one line below.
#include "drivers/driver.h"
#include "drivers/files/files_driver.h"
#include "drivers/nginx/nginx_driver.h"
#include "drivers/process/process_driver.h"

namespace backstop::container {
DriverInfo ContainerDriverInfo();
}
namespace backstop::nats {
DriverInfo NatsDriverInfo();
}
namespace backstop::postgres {
DriverInfo PostgresDriverInfo();
}

namespace backstop {

void RegisterBuiltinDrivers(DriverRegistry& registry) {
  (void)registry;
  registry.Register(nats::NatsDriverInfo());
  registry.Register(postgres::PostgresDriverInfo());
  registry.Register(process::ProcessDriverInfo());
  registry.Register(files::FilesDriverInfo());
  registry.Register(container::ContainerDriverInfo());
  registry.Register(nginx::NginxDriverInfo());
}

}  // namespace backstop
