// The message index and content-based loss: a message's digest (over
// subject, headers and data) and the restore point's index of them, read
// alongside a walk of the live stream; the ledger lines for a message
// discarded or published after the restore point, and for a consumer whose
// ack floor a restore moves back. NatsDriver::AssessLoss (message_loss.cc)
// writes the ledger with them.
//
// Thread-safety: the functions are safe to call from any thread; an
// IndexReader is used by one thread.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "drivers/driver.h"
#include "drivers/nats/nats_client.h"

namespace backstop::nats {

// The restore point's message index (see CaptureStream), read in sequence
// order alongside a walk of the live stream.
class IndexReader {
 public:
  explicit IndexReader(const std::string& path) : in_(path) { Next(); }
  // The digest the restore point held at `seq`, or empty when it held no
  // message there. Calls come in increasing `seq` order.
  std::string DigestAt(uint64_t seq) {
    while (have_ && seq_ < seq) Next();
    return have_ && seq_ == seq ? digest_ : std::string();
  }
  // How many of the restore point's messages have a sequence <= `seq`.
  uint64_t CountThrough(uint64_t seq) {
    while (have_ && seq_ <= seq) Next();
    return passed_;
  }

 private:
  void Next() {
    if (have_) ++passed_;
    have_ = static_cast<bool>(in_ >> seq_ >> digest_);
  }
  std::ifstream in_;
  bool have_ = false;
  uint64_t seq_ = 0;
  uint64_t passed_ = 0;
  std::string digest_;
};

// A ledger line for a message published after the restore point.
nlohmann::json PublishedLine(const std::string& stream, const MessageMeta& m);

// The consumers whose ack floor the restore moves back: each one's messages
// between the restore point's ack floor and the live one will be delivered
// again. By stream sequence, which does not count redeliveries.
Result<std::vector<PositionRewind>> ConsumerRewinds(Connection& conn, const std::string& stream,
                                                    const nlohmann::json& rec,
                                                    const std::string& component);

// A ledger line for a consumer's ack floor moved back, and back again.
nlohmann::json RewoundLine(const std::string& stream, const PositionRewind& r);

PositionRewind RewindOfLine(const nlohmann::json& line, const std::string& component);

// A message's identity when contents are compared: a digest of its
// subject, headers and data (each length-prefixed), with its sequence.
std::string MessageDigest(const MessageMeta& m);

// A discarded message as `backstop salvage` exports it.
nlohmann::json DiscardedLine(const std::string& stream, const MessageMeta& m);

}  // namespace backstop::nats
