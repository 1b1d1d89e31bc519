// The frames of SPEC.md section 4 (and 15.3, 16.1, 17.1) as data: field name, type, default, in
// the order of SPEC.md's tables (the canonical encoding's order). Written from SPEC.md.
//
// Type mini-language:
//   named types of SPEC.md 2 ("reqid", "id", "handle", ...), "bool", "any"
//   "int:LO..HI", "str:LO..HI" (code points), "bin:LO..HI" (bytes), "bin:N" (exactly N)
//   "a|b|c" an enum of strings, "[T]:N" an array of at most N T's, "{Struct}" a nested map,
//   a trailing "?" allows nil (the field's default is then "absent").
export const ABSENT = Symbol("absent");
export type Default = typeof ABSENT | null | boolean | number | string | [] | Record<string, never>;
export type Field = readonly [name: string, type: string, dflt?: Default];

const MAXID = 9007199254740991;
export const NAMED: Record<string, string> = {
  reqid: "int:1..4294967295",
  u32: "int:0..4294967295",
  id: `int:1..${MAXID}`,
  seq: `int:0..${MAXID}`,
  ms: `int:0..${MAXID}`,
  handle: "str:3..32/^[a-z0-9][a-z0-9_.]*$",
  name: "str:1..64",
  title: "str:0..128",
  cmid: "str:1..64",
  kind: "str:1..32",
  body: "bin:0..65536",
  pubkey: "bin:32",
  sig: "bin:64",
  nonce: "bin:32",
  limit: "int:1..500",
  errtext: "str:0..256",
  xkey: "bin:32",
  prekey: "bin:32..1184",
  kid: "int:0..4294967295",
  tid: `int:1..${MAXID}`,
  payid: "str:1..64",
  optpayid: "str:0..64",
  amount: `int:-${MAXID}..${MAXID}`,
  currency: "str:0..8",
  blob: "str:22..64/^[A-Za-z0-9_-]*$",
};

export const STRUCTS: Record<string, readonly Field[]> = {
  SignedEntry: [["body", "bin:1..16384"], ["sig", "sig"]],
  SignedPrekey: [["kid", "kid"], ["key", "prekey"], ["sig", "sig"]],
  OneTimePrekey: [["kid", "kid"], ["key", "xkey"]],
  Member: [["account", "id"], ["role", "owner|admin|member"], ["handle", "handle"], ["access", "addressed|all?", ABSENT]],
  ConvInfo: [
    ["conv", "id"], ["kind", "direct|group|channel"], ["title", "title"], ["last_seq", "seq"],
    ["role", "owner|admin|member"], ["read", "seq", 0], ["delivered", "seq", 0], ["member_count", "u32", 0],
    ["members", "[{Member}]:100000", []], ["joined", "seq", 0], ["access", "addressed|all?", ABSENT],
  ],
  Message: [
    ["seq", "seq"], ["ts", "ms"], ["sender", "seq"], ["device", "seq"], ["cmid", "cmid?", ABSENT],
    ["kind", "kind"], ["body", "body"], ["to", "[id]:16", []], ["fc", "bin:32?", ABSENT],
  ],
  LogEntry: [["epoch", "u32"], ["seq", "seq"], ["body", "bin:1..16384"], ["sig", "sig"]],
  PresenceInfo: [["account", "id"], ["online", "bool"], ["last_seen", "ms"]],
  Bundle: [
    ["device", "id"], ["signing_key", "pubkey"], ["identity_key", "xkey"], ["identity_sig", "sig"],
    ["signed_prekey", "{SignedPrekey}?", ABSENT], ["pq_prekey", "{SignedPrekey}?", ABSENT], ["one_time", "{OneTimePrekey}?", ABSENT],
  ],
  ToDeviceItem: [["tid", "tid"], ["sender", "id"], ["device", "id"], ["body", "bin:0..65536"]],
  TransferIntent: [
    ["transfer_id", "payid"], ["from", "id"], ["to", "id"], ["amount", "amount"], ["currency", "currency"],
    ["conv", "id"], ["memo_hash", "bin:32"], ["expires_at", "ms"], ["request_id", "optpayid", ""],
  ],
  RedPacketIntent: [
    ["packet_id", "payid"], ["from", "id"], ["conv", "id"], ["total", "amount"], ["currency", "currency"],
    ["shares", "int:1..4294967295"], ["split", "random|equal"], ["memo_hash", "bin:32"], ["expires_at", "ms"],
  ],
  Balance: [["currency", "currency"], ["amount", "amount"]],
  WalletEntry: [
    ["entry", "id"], ["ref", "str:0..256"], ["type", "transfer|red_packet|claim|refund|mint"], ["currency", "currency"],
    ["amount", "amount"], ["balance", "amount"], ["counterparty", "seq"], ["conv", "seq"], ["posted_at", "ms"],
  ],
  BotCommand: [["name", "str:1..32"], ["description", "str:0..256", ""], ["params", "[{CommandParam}]:16", []]],
  CommandParam: [["name", "str:1..32"], ["type", "str:1..16"], ["required", "bool", true]],
  Manifest: [["name", "str:1..32"], ["title", "title", ""], ["icon", "str:0..8", ""], ["actions", "[{MiniAppAction}]:64", []]],
  MiniAppAction: [["name", "str:1..64"], ["title", "name"], ["params", "[{ActionParam}]:16", []], ["price", "{Price}?", ABSENT]],
  ActionParam: [["name", "str:1..32"], ["type", "str|int|bool|amount"], ["required", "bool", true], ["choices", "[choice]:32", []]],
  Price: [["amount", "amount"], ["currency", "currency"]],
  RequestInfo: [
    ["conv", "id"], ["kind", "direct|group|channel"], ["sender", "id"], ["handle", "handle"], ["at", "ms"],
    ["title", "title", ""], ["last_seq", "seq", 0],
  ],
};

/** Structs whose canonical form writes an absent optional field as nil instead of leaving it
 * out (SPEC.md 2, "Canonical encoding"). */
export const KEEP_NIL = new Set(["Bundle"]);

const ENTRY: Field = ["entry", "{SignedEntry}?", ABSENT];

/** Client -> server frames. */
export const CLIENT: Record<string, readonly Field[]> = {
  register: [
    ["id", "reqid"], ["handle", "handle"], ["name", "name"], ["type", "user|bot", "user"], ["device_key", "pubkey"], ["device_name", "name"], ["sig", "sig"],
    ["approver", "id?", ABSENT], ["approval", "sig?", ABSENT],
  ],
  login: [["id", "reqid"], ["device", "id"], ["sig", "sig"]],
  link_device: [["id", "reqid"], ["handle", "handle"], ["device_key", "pubkey"], ["device_name", "name"], ["approver", "id"], ["approval", "sig"], ["sig", "sig"]],
  lookup: [["id", "reqid"], ["handle", "handle"]],
  create_conv: [["id", "reqid"], ["kind", "direct|group|channel"], ["title", "title", ""], ["members", "[id]:256", []], ENTRY],
  list_convs: [["id", "reqid"], ["after", "seq", 0]],
  list_members: [["id", "reqid"], ["conv", "id"], ["after", "seq", 0]],
  get_conv: [["id", "reqid"], ["conv", "id"]],
  invite: [["id", "reqid"], ["conv", "id"], ["account", "id"], ENTRY],
  remove: [["id", "reqid"], ["conv", "id"], ["account", "id"], ENTRY, ["ban", "bool", false]],
  unban: [["id", "reqid"], ["conv", "id"], ["account", "id"]],
  delete_message: [["id", "reqid"], ["conv", "id"], ["seq", "id"]],
  set_role: [["id", "reqid"], ["conv", "id"], ["account", "id"], ["role", "admin|member"], ENTRY],
  leave: [["id", "reqid"], ["conv", "id"], ENTRY],
  get_member_log: [["id", "reqid"], ["conv", "id"], ["after", "u32", 0], ["limit", "limit", 100]],
  rename: [["id", "reqid"], ["conv", "id"], ["title", "title"]],
  send: [["id", "reqid"], ["conv", "id"], ["cmid", "cmid"], ["kind", "kind"], ["body", "body"], ["to", "[id]:16", []], ["fc", "bin:32?", ABSENT]],
  sync: [["id", "reqid"], ["conv", "id"], ["after", "seq", 0]],
  fetch: [["id", "reqid"], ["conv", "id"], ["after", "seq", 0], ["before", "seq?", ABSENT], ["limit", "limit", 100]],
  receipt: [["id", "reqid"], ["conv", "id"], ["type", "delivered|read"], ["seq", "seq"]],
  typing: [["conv", "id"], ["on", "bool", true]],
  get_presence: [["id", "reqid"], ["accounts", "[id]:256"]],
  upload_keys: [["id", "reqid"], ["identity_key", "xkey"], ["identity_sig", "sig"], ["signed_prekey", "{SignedPrekey}?", ABSENT], ["pq_prekey", "{SignedPrekey}?", ABSENT], ["one_time", "[{OneTimePrekey}]:100", []]],
  claim_keys: [["id", "reqid"], ["account", "id"]],
  put_device_list: [["id", "reqid"], ["body", "bin:0..65536"], ["sig", "sig"], ["master_key", "pubkey"], ["version", "int:1..4294967295"]],
  get_device_list: [["id", "reqid"], ["account", "id"]],
  to_device: [["id", "reqid"], ["device", "id"], ["body", "bin:0..65536"]],
  fetch_to_device: [["id", "reqid"], ["after", "seq", 0], ["limit", "limit", 100]],
  ack_to_device: [["id", "reqid"], ["up_to", "seq"]],
  get_payment_key: [["id", "reqid"]],
  pay: [["id", "reqid"], ["intent", "{TransferIntent}"], ["device", "id"], ["sig", "sig"]],
  red_packet: [["id", "reqid"], ["intent", "{RedPacketIntent}"], ["device", "id"], ["sig", "sig"]],
  claim: [["id", "reqid"], ["packet_id", "payid"]],
  request_payment: [["id", "reqid"], ["request_id", "payid"], ["conv", "id"], ["from", "seq", 0], ["amount", "amount"], ["currency", "currency"], ["expires_at", "ms"]],
  decline_request: [["id", "reqid"], ["request_id", "payid"]],
  cancel_request: [["id", "reqid"], ["request_id", "payid"]],
  balance: [["id", "reqid"], ["currency", "currency", ""]],
  wallet_history: [["id", "reqid"], ["currency", "currency", ""], ["before", "seq?", ABSENT], ["limit", "limit", 100]],
  set_bot_profile: [["id", "reqid"], ["commands", "[{BotCommand}]:100"], ["manifest", "{Manifest}?", ABSENT]],
  get_bot_profile: [["id", "reqid"], ["account", "id"]],
  set_bot_access: [["id", "reqid"], ["conv", "id"], ["account", "id"], ["access", "addressed|all"], ENTRY],
  list_requests: [["id", "reqid"], ["after", "seq", 0], ["limit", "limit", 50]],
  answer_request: [["id", "reqid"], ["conv", "id"], ["answer", "accept|delete|block"]],
  block: [["id", "reqid"], ["account", "id"]],
  unblock: [["id", "reqid"], ["account", "id"]],
  list_contacts: [["id", "reqid"], ["which", "contacts|blocked", "contacts"], ["after", "seq", 0], ["limit", "limit", 100]],
  get_privacy: [["id", "reqid"]],
  set_privacy: [["id", "reqid"], ["add_me", "everyone|contacts|nobody?", ABSENT], ["presence", "everyone|contacts|nobody?", ABSENT], ["last_seen", "everyone|contacts|nobody?", ABSENT]],
  upload_token: [["id", "reqid"], ["conv", "id"], ["size", "id"], ["blob", "str:0..64/^([A-Za-z0-9_-]{22,64})?$", ""]],
  download_token: [["id", "reqid"], ["blob", "blob"]],
  attach_blob: [["id", "reqid"], ["conv", "id"], ["blob", "blob"], ["seq", "seq", 0]],
  detach_blob: [["id", "reqid"], ["conv", "id"], ["seq", "id"], ["blob", "blob"]],
  report: [["id", "reqid"], ["conv", "id"], ["seq", "id"], ["plaintext", "body"], ["fk", "bin:32"], ["reason", "str:0..256", ""]],
};

/** Server -> client frames. */
export const SERVER: Record<string, readonly Field[]> = {
  challenge: [["server", "str:0..1000000"], ["nonce", "nonce"], ["expires_in_ms", "ms"]],
  welcome: [["re", "reqid"], ["account", "id"], ["device", "id"], ["handle", "handle"], ["server_time", "ms"]],
  ok: [["re", "reqid"]],
  error: [["re", "u32", 0], ["code", "u32"], ["msg", "errtext", ""]],
  account: [["re", "reqid"], ["account", "id"], ["handle", "handle"], ["name", "name"], ["type", "user|bot"]],
  conv: [["re", "reqid"], ["info", "{ConvInfo}"]],
  convs: [["re", "reqid"], ["convs", "[{ConvInfo}]:1000000"], ["more", "bool", false]],
  members: [["re", "reqid"], ["conv", "id"], ["members", "[{Member}]:1000000"], ["more", "bool"]],
  ack: [["re", "reqid"], ["conv", "id"], ["cmid", "cmid"], ["seq", "seq"], ["ts", "ms"]],
  deliver: [["conv", "id"], ["seq", "seq"], ["ts", "ms"], ["sender", "seq"], ["device", "seq"], ["cmid", "cmid?", ABSENT], ["kind", "kind"], ["body", "body"], ["to", "[id]:16", []], ["fc", "bin:32?", ABSENT]],
  member_log: [["re", "reqid"], ["conv", "id"], ["entries", "[{LogEntry}]:1000000"], ["more", "bool"]],
  synced: [["re", "reqid"], ["conv", "id"], ["seq", "seq"]],
  messages: [["re", "reqid"], ["conv", "id"], ["messages", "[{Message}]:1000000"], ["more", "bool"]],
  receipt_event: [["conv", "id"], ["account", "id"], ["device", "id"], ["type", "delivered|read"], ["seq", "seq"]],
  typing_event: [["conv", "id"], ["account", "id"], ["on", "bool"]],
  presence: [["account", "id"], ["online", "bool"], ["last_seen", "ms"]],
  presence_list: [["re", "reqid"], ["presence", "[{PresenceInfo}]:1000000"]],
  key_count: [["re", "reqid"], ["one_time", "u32"]],
  bundles: [["re", "reqid"], ["account", "id"], ["bundles", "[{Bundle}]:1000000"]],
  device_list: [["re", "reqid"], ["account", "id"], ["version", "u32"], ["body", "bin:0..65536"], ["sig", "bin:0..64"], ["master_key", "bin:0..32"]],
  device_list_changed: [["account", "id"], ["version", "u32"]],
  resync: [],
  to_device_event: [["tid", "tid"], ["sender", "id"], ["device", "id"], ["body", "bin:0..65536"]],
  to_device_batch: [["re", "reqid"], ["events", "[{ToDeviceItem}]:1000000"], ["more", "bool"]],
  payment_key: [["re", "reqid"], ["server", "str:0..1000000"], ["key", "pubkey"]],
  posted: [["re", "reqid"], ["conv", "id"], ["seq", "seq"], ["ts", "ms"], ["body", "body"], ["replay", "bool", false]],
  balances: [["re", "reqid"], ["balances", "[{Balance}]:1000000"]],
  wallet_entries: [["re", "reqid"], ["entries", "[{WalletEntry}]:1000000"], ["more", "bool"]],
  bot_profile: [["re", "reqid"], ["account", "id"], ["commands", "[{BotCommand}]:100"], ["manifest", "{Manifest}?", ABSENT], ["updated_at", "ms", 0]],
  requests: [["re", "reqid"], ["requests", "[{RequestInfo}]:1000000"], ["more", "bool"]],
  contacts: [["re", "reqid"], ["accounts", "[id]:1000000"], ["more", "bool"]],
  privacy: [["re", "reqid"], ["add_me", "everyone|contacts|nobody"], ["presence", "everyone|contacts|nobody"], ["last_seen", "everyone|contacts|nobody"]],
  request_event: [["request", "{RequestInfo}"]],
  reported: [["re", "reqid"], ["report", "id"], ["sender", "id"]],
  media_token: [["re", "reqid"], ["blob", "blob"], ["token", "str:1..128"], ["path", "str:0..1000"], ["expires", "ms"]],
};
