#include "testing/test_spec.h"

#include <utility>

namespace backstop::testing {

ComponentSpec& AddComponent(Spec* spec, const std::string& name, ComponentKind kind,
                            const std::string& driver, nlohmann::json settings,
                            std::vector<std::string> depends_on) {
  ComponentSpec c;
  c.name = name;
  c.kind = kind;
  c.driver = driver;
  c.settings = std::move(settings);
  c.depends_on = std::move(depends_on);
  spec->component_order.push_back(name);
  return spec->components[name] = std::move(c);
}

}  // namespace backstop::testing
