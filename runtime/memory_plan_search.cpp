// make_plan: the plan of a request (memory_plan_fixed.h), with --weights auto's choice and,
// when it does not fit, the changes that would.
#include <functional>

#include "runtime/memory_plan.h"
#include "runtime/memory_plan_fixed.h"

namespace tessera {
namespace {

// "fp16 leaves 0 KV blocks"
std::string room_text(const Plan& p) {
  return std::string(weight_choice_name(p.weights)) + " leaves " + std::to_string(p.kv_blocks) +
         " KV blocks";
}

// "a 32768-token sequence needs 2048"
std::string need_text(const Plan& p) {
  return "a " + std::to_string(p.max_model_len) + "-token sequence needs " +
         std::to_string(ceil_div(p.max_model_len, p.request.block_size));
}

// --weights auto: the least lossy of stored -> int8 -> int4 that fits at the requested
// context (the model's max when the context is auto too); when none does, the format that
// leaves the most KV blocks.
Plan plan_auto_weights(const PlanRequest& req) {
  PlanRequest r = req;
  r.weights_auto = false;
  if (r.model.prequant.active()) {
    r.weights.reset();
    Plan out = plan_fixed(r);
    out.request.weights_auto = true;
    out.notes.push_back(std::string("--weights auto: the checkpoint is already 4-bit (") +
                        r.model.prequant.name() + "), used as stored");
    return out;
  }
  PlanRequest at_len = r;
  at_len.max_model_len_auto = false;
  const std::optional<WeightChoice> order[] = {std::nullopt, WeightChoice::INT8,
                                               WeightChoice::INT4};
  std::string rejected;
  std::optional<WeightChoice> roomiest;
  int64_t roomiest_blocks = -1;
  for (const auto& f : order) {
    at_len.weights = f;
    const Plan p = plan_fixed(at_len);
    if (p.fits) {
      r.weights = f;
      Plan out = plan_fixed(r);
      out.request.weights_auto = true;
      out.notes.push_back("--weights auto: " + rejected + "chose " + weight_choice_name(p.weights) +
                          ", which leaves " + std::to_string(p.kv_blocks) +
                          (rejected.empty() ? " KV blocks (" + need_text(p) + ")" : ""));
      return out;
    }
    rejected += room_text(p) + " (" + need_text(p) + "); ";
    if (p.kv_blocks > roomiest_blocks) roomiest = f, roomiest_blocks = p.kv_blocks;
  }
  r.weights = roomiest;
  Plan out = plan_fixed(r);
  out.request.weights_auto = true;
  out.notes.push_back("--weights auto: " + rejected + "none fits; " +
                      weight_choice_name(out.weights) + " leaves the most room");
  return out;
}

// One change a user can make to the request, for the options of a plan that does not fit.
struct Change {
  std::string flag;  // "--weights int4"; empty for the context (its value comes from the plan)
  int group;         // changes of one group exclude each other (0 weights, 1 tp, 2 kv, 3 len,
                     // 4 lm_head, 5 embeddings)
  std::function<void(PlanRequest&)> apply;
};

// Options: every single change that makes the plan fit; when none does, every pair; then
// every triple.
std::vector<PlanOption> find_options(const Plan& plan) {
  PlanRequest base = plan.request;
  base.weights = plan.weights;
  base.weights_auto = false;
  base.kv = plan.kv;
  std::vector<Change> changes;
  for (WeightChoice f : {WeightChoice::INT8, WeightChoice::INT4})
    if (plan.weights != f && plan.weights != WeightChoice::INT4)
      changes.push_back({std::string("--weights ") + weight_choice_name(f), 0,
                         [f](PlanRequest& r) { r.weights = f; }});
  if (!base.lm_head_int8)
    changes.push_back({"--lm-head int8", 4, [](PlanRequest& r) { r.lm_head_int8 = true; }});
  if (base.device.cuda && !base.embeddings_host)
    changes.push_back({"--embeddings host", 5, [](PlanRequest& r) { r.embeddings_host = true; }});
  if (plan.kv != KvDtype::INT8)
    changes.push_back({"--kv-cache int8", 2, [](PlanRequest& r) { r.kv = KvDtype::INT8; }});
  if (base.device.cuda)  // CPU ranks share one host's memory: more of them do not help
    for (int t : valid_tp_sizes(base.model, 8))
      if (t > base.tp)
        changes.push_back({"--tp " + std::to_string(t), 1, [t](PlanRequest& r) { r.tp = t; }});
  if (!base.max_model_len_auto)
    changes.push_back({"", 3, [](PlanRequest& r) { r.max_model_len_auto = true; }});

  std::vector<PlanOption> out;
  const size_t n = changes.size();
  for (size_t size = 1; size <= 3 && out.empty(); ++size) {
    // Subsets of `size` changes, as bit masks, no two from one group.
    for (uint32_t mask = 1; mask < (1u << n); ++mask) {
      if (size_t(__builtin_popcount(mask)) != size) continue;
      PlanRequest r = base;
      std::string flags;
      int groups = 0;
      bool clash = false;
      for (size_t i = 0; i < n; ++i) {
        if (!(mask >> i & 1u)) continue;
        clash |= bool(groups >> changes[i].group & 1);
        groups |= 1 << changes[i].group;
        changes[i].apply(r);
        if (!changes[i].flag.empty()) flags += (flags.empty() ? "" : " ") + changes[i].flag;
      }
      // A tied model keeps its table on the card unless an int8 lm_head replaces it there.
      if (clash || (r.embeddings_host && r.model.tie_word_embeddings && !r.lm_head_int8))
        continue;
      const Plan p = plan_fixed(r);
      if (!p.fits) continue;
      PlanOption o;
      o.change = flags;
      if (r.max_model_len_auto)
        o.change += (flags.empty() ? "" : " ") + std::string("--max-model-len ") +
                    std::to_string(p.max_model_len);
      o.fits = true;
      o.tp = r.tp;
      o.max_model_len = p.max_model_len;
      o.max_concurrent_at_max_len = p.max_concurrent_at_max_len;
      o.kv_blocks = p.kv_blocks;
      o.weights_bytes_per_rank = p.weights_bytes_per_rank();
      o.kv_bytes_per_token = p.kv_bytes_per_token;
      out.push_back(o);
    }
  }
  return out;
}

}  // namespace

Plan make_plan(const PlanRequest& req) {
  validate_plan_request(req);
  Plan p = req.weights_auto ? plan_auto_weights(req) : plan_fixed(req);
  if (req.max_model_len_auto && p.fits)
    p.notes.push_back("--max-model-len auto: " + std::to_string(p.max_model_len) + " tokens (" +
                      (p.max_model_len == req.model.max_position_embeddings
                           ? "the model's max_position_embeddings"
                           : "the most the KV cache holds") + ")");
  if (!p.fits) p.options = find_options(p);
  return p;
}

}  // namespace tessera
