// Reads a generator file with C++ Broker 1.4's own reader (Debian's libbroker-dev exports
// broker::detail::make_generator_file_reader) and prints one line per entry:
//   data TOPIC TYPE-INDEX VALUE      (Broker 1.4's data::type numbering, alphabetical)
//   command TOPIC COMMAND-INDEX      (Broker 1.4's internal_command variant index)
// or "error ..." and exits 1. Built and run by crates/broker-wire/tests/broker14_interop.rs.
#include <broker/broker.hh>
#include <broker/detail/generator_file_reader.hh>
#include <broker/internal_command.hh>
#include <broker/message.hh>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cout << "error usage: broker14_read FILE\n";
    return 1;
  }
  auto reader = broker::detail::make_generator_file_reader(argv[1]);
  if (reader == nullptr) {
    std::cout << "error cannot open " << argv[1] << "\n";
    return 1;
  }
  broker::detail::generator_file_reader::value_type x;
  while (!reader->at_end()) {
    if (auto err = reader->read(x)) {
      std::cout << "error " << caf::to_string(err) << "\n";
      return 1;
    }
    if (caf::holds_alternative<broker::data_message>(x)) {
      auto& msg = caf::get<broker::data_message>(x);
      const auto& d = broker::get_data(msg);
      std::cout << "data " << broker::get_topic(msg).string() << " "
                << static_cast<int>(d.get_type()) << " " << broker::to_string(d) << "\n";
    } else {
      auto& msg = caf::get<broker::command_message>(x);
      std::cout << "command " << broker::get_topic(msg).string() << " "
                << caf::get<1>(msg).content.index() << "\n";
    }
  }
  return 0;
}
