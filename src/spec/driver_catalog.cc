#include "spec/driver_catalog.h"

#include <utility>

namespace backstop {

DriverSchemaList::DriverSchemaList(std::vector<DriverSchema> drivers) {
  for (auto& d : drivers) Add(std::move(d));
}

void DriverSchemaList::Add(DriverSchema driver) {
  std::string name = driver.name;
  drivers_[name] = std::move(driver);
}

std::vector<std::string> DriverSchemaList::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, schema] : drivers_) out.push_back(name);
  return out;
}

const DriverSchema* DriverSchemaList::FindSchema(const std::string& name) const {
  auto it = drivers_.find(name);
  return it == drivers_.end() ? nullptr : &it->second;
}

}  // namespace backstop
