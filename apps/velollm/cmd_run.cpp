// `velollm run -m MODEL [-p PROMPT] [-n N] [sampling flags]`: raw completion
// (no chat template) of a prompt, streamed to stdout as it is generated.
// Without -p the prompt is read from stdin.
#include <unistd.h>

#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "command.h"
#include "engine/generator.h"
#include "generation_flags.h"

namespace {

using namespace velo;

struct RunOptions {
  cli::GenerationFlags gen;
  std::string prompt;
  bool have_prompt = false;
  bool no_bos = false;
  bool truncate = false;
};

int run(const RunOptions& o) {
  auto params = cli::sampling_params(o.gen);
  if (!params.ok()) return cli::fail(params.message());
  std::string prompt = o.prompt;
  if (!o.have_prompt) prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());

  auto runner = cli::load_runner(o.gen);
  if (!runner.ok()) return cli::fail(runner.message());
  Generator gen(**runner);
  if (auto st = params->validate((*runner)->n_vocab()); !st.ok()) return cli::fail(st.message());

  GenerateOptions go;
  go.add_bos = !o.no_bos;
  go.truncate = o.truncate;
  go.on_text = [](std::string_view s) {
    cli::write_out(s);
    return true;
  };
  auto res = gen.generate(prompt, *params, go);
  if (!res.ok()) return cli::fail(res.message());
  if (isatty(STDOUT_FILENO)) cli::write_out("\n");
  if (o.gen.verbose) cli::print_timings(res->timings, res->finish);
  return 0;
}

const bool registered = cli::register_command(
    {"run", "Generate text from a prompt (raw completion, streamed)", 20,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<RunOptions>();
       cli::add_generation_flags(sub, o->gen, 256);
       sub.add_option("-p,--prompt", o->prompt, "Prompt text (default: read stdin)");
       sub.add_flag("--no-bos", o->no_bos, "Do not add the BOS token before the prompt");
       sub.add_flag("--truncate", o->truncate,
                    "Drop the oldest prompt tokens when the prompt does not fit the context");
       return [o, &sub] {
         o->have_prompt = sub.count("--prompt") > 0;
         return run(*o);
       };
     }});

}  // namespace
