// DriverCatalog: what the spec parser knows of the drivers a spec may name:
// each driver's name, the component kinds it serves and its settings'
// schema. The parser takes a catalogue from its caller (ParseSpec, LoadSpec)
// rather than reaching for the drivers, which sit above spec/: the command
// line and the watch daemon pass the DriverRegistry (drivers/driver.h),
// which is one; tests and the fuzz target pass a DriverSchemaList.
//
// Ownership: the caller keeps the catalogue alive while a parse runs.
// Thread-safety: read-only after it is filled; reads may run concurrently.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "spec/setting_schema.h"

namespace backstop {

// One driver as the parser sees it.
struct DriverSchema {
  std::string name;
  std::vector<std::string> kinds;       // component kinds this driver serves
  std::vector<SettingSchema> settings;  // its settings, checked and converted by the parser
  // Runs blue/green slots (Driver::SupportsSlots): a service of this driver
  // may have a `traffic:` block.
  bool supports_slots = false;
};

class DriverCatalog {
 public:
  virtual ~DriverCatalog() = default;
  // The name of every driver, sorted.
  virtual std::vector<std::string> Names() const = 0;
  // The driver called `name`; nullptr when there is none.
  virtual const DriverSchema* FindSchema(const std::string& name) const = 0;
};

// A catalogue that is a plain list of schemas, for tests and the fuzz
// target (the parser without any driver code).
class DriverSchemaList final : public DriverCatalog {
 public:
  DriverSchemaList() = default;
  explicit DriverSchemaList(std::vector<DriverSchema> drivers);
  // Adds `driver`, replacing one of the same name.
  void Add(DriverSchema driver);

  std::vector<std::string> Names() const override;
  const DriverSchema* FindSchema(const std::string& name) const override;

 private:
  std::map<std::string, DriverSchema> drivers_;
};

}  // namespace backstop
