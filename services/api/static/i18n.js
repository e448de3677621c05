// Labels in English and Chinese; the choice is remembered per browser.
const STRINGS = {
  en: {
    range: "Range", logout: "Sign out", live_title: "Live updates",
    live_on: "live", live_off: "offline",
    login_title: "Plant dashboard", login_hint: "Enter an API key (created with `factory5g keys create`).",
    login_key: "API key", login_go: "Open dashboard", login_bad: "This key was not accepted",
    portfolio: "Projects", project: "Project", device: "Device",
    scenario: "Scenario", city: "City", enterprise: "Enterprise",
    online: "online", offline: "offline", devices: "Devices",
    open_alarms: "Open alarms", no_alarms: "No open alarms",
    defect_rate: "Defect rate", first_pass_yield: "First pass yield", inspections: "Inspections",
    utilisation: "AGV utilisation", e_stops: "E-stops", latency_p95: "5G latency p95",
    latency_p99: "5G latency p99", mean_rsrp: "Mean RSRP", mean_sinr: "Mean SINR",
    mean_battery: "Mean battery", low_battery_share: "Low battery share", loss: "Packet loss",
    target: "target", met: "on target", missed: "off target", today: "today",
    ch_defect_rate: "Defect rate per station", ch_throughput: "Throughput per station (parts per bucket)",
    ch_agv_states: "AGV fleet states", ch_battery: "AGV battery (%)",
    ch_latency: "5G latency percentiles (ms)", ch_rsrp: "RSRP (dBm) against quality bands",
    ch_sinr: "SINR (dB) against quality bands",
    excellent: "excellent", good: "good", fair: "fair", poor: "poor",
    avg: "average", min: "minimum", max: "maximum",
    alarm_feed: "Alarm feed", ack: "Acknowledge", clear: "Clear",
    open: "open", acknowledged: "acknowledged", cleared: "cleared",
    critical: "critical", major: "major", minor: "minor", warning: "warning", info: "info",
    last_values: "Last values", recent: "Recent series", its_alarms: "Alarms", dead_letters: "Dead letters",
    no_dead_letters: "No rejected messages in this range", no_data: "No data in this range",
    no_projects: "No projects visible to this key yet",
    no_alarms_device: "No alarms for this device",
    error: "Could not load", retry: "Retry", forbidden: "This key may not do that",
    kind: "Kind", last_seen: "Last seen", first_seen: "First seen", reason: "Reason",
    detail: "Detail", time: "Time", topic: "Topic", rule: "Rule", severity: "Severity",
    state: "State", message: "Message", value: "Value", stream: "Stream",
    h1: "1 h", h6: "6 h", h24: "24 h", d7: "7 days", d30: "30 days", custom: "custom…",
    moving: "moving", loading: "loading", idle: "idle", charging: "charging", error_state: "error", estop: "e-stop",
    read_only: "read-only key", new_alarm: "New alarm",
    search_projects: "Search projects", status: "Status", status_all: "all statuses",
    status_active: "active", status_planned: "planned", status_paused: "paused",
    status_completed: "completed", status_archived: "archived",
    no_matching_projects: "No project matches this search and status",
    notifications: "Notifications", notify_hint: "Where alarm notifications go: channels, routes and escalation policies (configured through the API).",
    nt_channels: "Channels", nt_routes: "Routes", nt_policies: "Escalation policies", nt_deliveries: "Notifications",
    nt_type: "Type", nt_config: "Settings (secrets hidden)", nt_enabled: "Enabled", nt_channel: "Channel",
    nt_filters: "Filters", nt_language: "Language", nt_quiet: "Quiet hours", nt_steps: "Steps", nt_reminders: "Reminders",
    nt_kind: "Kind", nt_attempts: "Attempts", nt_answer: "Receiver's answer",
    all_projects: "all projects", escalation_only: "escalation only", send_test: "Send test",
    admin_only: "Only an admin key may see the notification settings",
    no_channels: "No channels yet", no_routes: "No routes yet", no_policies: "No escalation policies",
    no_deliveries: "No notifications for this alarm", alarm_history: "History",
    updated: "updated", escalated: "escalated", opened: "opened",
    dl_queued: "queued", dl_sending: "sending", dl_sent: "sent", dl_failed: "failed, retrying", dl_gave_up: "given up",
    kind_opened: "opened", kind_escalated: "escalated", kind_acknowledged: "acknowledged", kind_cleared: "cleared",
    kind_reminder: "reminder", kind_escalation: "escalation", kind_test: "test",
    admin: "Administration", admin_devices: "Devices waiting for registration",
    admin_credentials: "Broker credentials", admin_keys: "API keys", admin_retention: "Retention",
    admin_audit: "Audit trail", no_unregistered: "Every device is registered",
    no_credentials: "No broker credentials issued yet", no_audit: "No administrative acts yet",
    profiles: "Profiles", line: "Line", register: "Register", prefix: "Prefix", name: "Name",
    scope: "Scope", projects: "Projects", created: "Created", revoked: "Revoked", revoke: "Revoke",
    all: "all", create: "Create", token: "API key:", password: "Password:",
    shown_once: "Copy it now: it is shown only this once.", type: "Type", username: "User name",
    issue: "Issue", cred_native: "native device", cred_sparkplug: "Sparkplug edge node",
    cred_vda5050: "VDA 5050 AGV", cred_alarms: "alarm board (read-only)", group: "Group",
    node: "Node", manufacturer: "Manufacturer", serial: "Serial number", store: "Store",
    size: "Size", keep_days: "Keep (days)", next_drop: "Next drop", kept_forever: "kept for ever",
    save: "Save", actor: "Actor", action: "Action", audit_target: "Target",
    admin_rules: "Rules", rules_active: "Active:", rules_file: "The rule file is in force (no version from the API yet).",
    rules_submit: "Check and apply", rstate_pending: "waiting for the rules service",
    rstate_active: "active", rstate_rejected: "rejected", rstate_superseded: "replaced", version: "Version",
    backtest: "Backtest (7 days)", backtest_running: "replaying the stored history…",
    backtest_records: "Records replayed", opened_now: "Opened (running rules)",
    opened_new: "Opened (this document)", cleared_new: "Cleared (this document)", flaps_new: "Flaps (this document)",
    commands: "Commands", command: "Command", send: "Send", cancel: "Cancel",
    confirm_send: "Send", no_commands: "No commands sent to this device",
    no_commands_allowed: "No command is allowed for this kind of device",
    cmd_queued: "queued", cmd_sent: "sent", cmd_accepted: "accepted", cmd_rejected: "rejected",
    cmd_completed: "completed", cmd_failed: "failed", cmd_expired: "expired",
    eff_title: "Effective rules of a device", eff_show: "Show", eff_setting: "Setting",
    eff_layer: "Layer", eff_source: "Written at", eff_brought_by: "Profile / kind",
    eff_builtin: "built-in default", eff_none: "No rules apply to this device",
    eff_kinds_hint: "profiles, if not registered",
    // floor map (pages/floor.js)
    floor_map: "Floor map", floor_map_id: "Map", floor_heatmap: "5G coverage heatmap",
    floor_metric: "Metric", floor_agvs: "AGVs on the floor", floor_position: "Position",
    floor_battery: "Battery", floor_no_agvs: "No AGV reported a position on this map in the last 24 h",
    floor_no_plan: "No floor plan uploaded: the map is scaled to the positions",
    // pages/availability.js: 5G scorecard and alarm root cause
    av_title: "5G service availability", av_link: "5G scorecard",
    av_hint: "Per 5G module: unavailable from transfer interval + survival time after a message until the next one (3GPP TS 22.261 / 22.104).",
    av_flows: "Flows", av_availability: "Availability", av_flows_met: "Flows on target",
    av_outages: "Outages", av_longest: "Longest outage", av_unavailable: "Unavailable time",
    av_deadline: "Interval + survival", av_rsrp_bands: "RSRP bands", av_sinr_bands: "SINR bands",
    p50: "p50", p95: "p95", p99: "p99",
    cause_network_suspected: "network suspected", cause_link_consequence: "caused by 5G link",
    // OEE page (pages/oee.js)
    oee_title: "OEE", oee_link: "OEE", oee_back: "Back to the project",
    oee_availability: "Availability", oee_effectiveness: "Performance", oee_quality: "Quality",
    oee_oee: "OEE", oee_run: "Run time", oee_down: "Unplanned downtime", oee_planned_busy: "Planned busy time",
    oee_produced: "Good / produced", oee_good: "Good",
    oee_no_plan: "No shifts planned: OEE needs a shift plan (an admin sets it below).",
    oee_by_machine: "OEE per machine", oee_by_line: "OEE per line", oee_machine: "Machine", oee_line: "Line",
    oee_no_line: "(no line)", oee_pareto: "Downtime by reason (Pareto)", oee_trend: "OEE per shift (%)",
    oee_settings: "Shift plan and ideal cycle time", oee_timezone: "Time zone",
    oee_ideal_cycle: "Ideal cycle time (default)", oee_minutes: "min", oee_downtime: "Downtime",
    oee_stops: "stops", oee_bad_json: "Not valid JSON", oee_saved: "OEE settings saved",
    // report page (evidence report buttons)
    report: "Report", report_csv: "Report CSV", report_failed: "Report not produced",
    report_hint: "Evidence report of the selected range: KPIs against targets, OEE, 5G scorecard, alarms, data completeness",
  },
  zh: {
    range: "时间范围", logout: "退出", live_title: "实时更新",
    live_on: "实时", live_off: "离线",
    login_title: "工厂看板", login_hint: "请输入 API 密钥（用 `factory5g keys create` 创建）。",
    login_key: "API 密钥", login_go: "打开看板", login_bad: "密钥无效",
    portfolio: "项目总览", project: "项目", device: "设备",
    scenario: "场景", city: "城市", enterprise: "企业",
    online: "在线", offline: "离线", devices: "设备",
    open_alarms: "未关闭告警", no_alarms: "无未关闭告警",
    defect_rate: "缺陷率", first_pass_yield: "一次合格率", inspections: "检测数",
    utilisation: "AGV 利用率", e_stops: "急停次数", latency_p95: "5G 时延 p95",
    latency_p99: "5G 时延 p99", mean_rsrp: "平均 RSRP", mean_sinr: "平均 SINR",
    mean_battery: "平均电量", low_battery_share: "低电量占比", loss: "丢包率",
    target: "目标", met: "达标", missed: "未达标", today: "今日",
    ch_defect_rate: "各工位缺陷率", ch_throughput: "各工位产量（每时段件数）",
    ch_agv_states: "AGV 车队状态", ch_battery: "AGV 电量（%）",
    ch_latency: "5G 时延分位数（毫秒）", ch_rsrp: "RSRP（dBm）与质量区间",
    ch_sinr: "SINR（dB）与质量区间",
    excellent: "优", good: "良", fair: "中", poor: "差",
    avg: "平均", min: "最小", max: "最大",
    alarm_feed: "告警流", ack: "确认", clear: "清除",
    open: "未处理", acknowledged: "已确认", cleared: "已清除",
    critical: "紧急", major: "重要", minor: "次要", warning: "警告", info: "提示",
    last_values: "最新值", recent: "近期曲线", its_alarms: "告警", dead_letters: "死信",
    no_dead_letters: "此时间范围内无被拒消息", no_data: "此时间范围内无数据",
    no_projects: "此密钥暂无可见项目",
    no_alarms_device: "此设备无告警",
    error: "加载失败", retry: "重试", forbidden: "此密钥无权执行该操作",
    kind: "类型", last_seen: "最后上报", first_seen: "首次上报", reason: "原因",
    detail: "详情", time: "时间", topic: "主题", rule: "规则", severity: "级别",
    state: "状态", message: "信息", value: "值", stream: "数据流",
    h1: "1 小时", h6: "6 小时", h24: "24 小时", d7: "7 天", d30: "30 天", custom: "自定义…",
    moving: "行驶", loading: "装卸", idle: "空闲", charging: "充电", error_state: "故障", estop: "急停",
    read_only: "只读密钥", new_alarm: "新告警",
    search_projects: "搜索项目", status: "状态", status_all: "全部状态",
    status_active: "进行中", status_planned: "计划中", status_paused: "已暂停",
    status_completed: "已完成", status_archived: "已归档",
    no_matching_projects: "没有符合此搜索和状态的项目",
    notifications: "通知", notify_hint: "告警通知发往何处：通道、路由和升级策略（通过 API 配置）。",
    nt_channels: "通道", nt_routes: "路由", nt_policies: "升级策略", nt_deliveries: "通知记录",
    nt_type: "类型", nt_config: "配置（密钥已隐藏）", nt_enabled: "启用", nt_channel: "通道",
    nt_filters: "过滤条件", nt_language: "语言", nt_quiet: "免打扰时段", nt_steps: "升级步骤", nt_reminders: "提醒",
    nt_kind: "类别", nt_attempts: "尝试次数", nt_answer: "接收方应答",
    all_projects: "全部项目", escalation_only: "仅用于升级", send_test: "发送测试",
    admin_only: "仅管理员密钥可查看通知设置",
    no_channels: "暂无通道", no_routes: "暂无路由", no_policies: "暂无升级策略",
    no_deliveries: "此告警暂无通知", alarm_history: "历史",
    updated: "已更新", escalated: "已升级", opened: "已触发",
    dl_queued: "排队中", dl_sending: "发送中", dl_sent: "已送达", dl_failed: "失败，重试中", dl_gave_up: "已放弃",
    kind_opened: "触发", kind_escalated: "级别提升", kind_acknowledged: "已确认", kind_cleared: "已清除",
    kind_reminder: "提醒", kind_escalation: "升级", kind_test: "测试",
    admin: "系统管理", admin_devices: "待登记设备",
    admin_credentials: "消息代理凭据", admin_keys: "API 密钥", admin_retention: "数据保留",
    admin_audit: "审计记录", no_unregistered: "所有设备均已登记",
    no_credentials: "尚未签发消息代理凭据", no_audit: "暂无管理操作",
    profiles: "设备档案", line: "产线", register: "登记", prefix: "前缀", name: "名称",
    scope: "权限", projects: "项目", created: "创建时间", revoked: "吊销时间", revoke: "吊销",
    all: "全部", create: "创建", token: "API 密钥：", password: "密码：",
    shown_once: "请立即复制：此内容只显示这一次。", type: "类型", username: "用户名",
    issue: "签发", cred_native: "原生设备", cred_sparkplug: "Sparkplug 边缘节点",
    cred_vda5050: "VDA 5050 AGV", cred_alarms: "告警看板（只读）", group: "组",
    node: "节点", manufacturer: "制造商", serial: "序列号", store: "存储",
    size: "大小", keep_days: "保留（天）", next_drop: "下次清理", kept_forever: "永久保留",
    save: "保存", actor: "操作者", action: "操作", audit_target: "对象",
    admin_rules: "告警规则", rules_active: "当前生效：", rules_file: "当前使用规则文件（尚无经 API 提交的版本）。",
    rules_submit: "校验并生效", rstate_pending: "等待规则服务处理",
    rstate_active: "生效中", rstate_rejected: "已拒绝", rstate_superseded: "已替换", version: "版本",
    backtest: "回测（7 天）", backtest_running: "正在回放历史数据…",
    backtest_records: "回放记录数", opened_now: "触发次数（当前规则）",
    opened_new: "触发次数（本文档）", cleared_new: "清除次数（本文档）", flaps_new: "抖动次数（本文档）",
    commands: "命令", command: "命令", send: "发送", cancel: "取消",
    confirm_send: "确认发送", no_commands: "尚未向此设备发送命令",
    no_commands_allowed: "此类设备没有允许的命令",
    cmd_queued: "排队中", cmd_sent: "已发送", cmd_accepted: "已接受", cmd_rejected: "已拒绝",
    cmd_completed: "已完成", cmd_failed: "失败", cmd_expired: "已过期",
    eff_title: "设备的生效规则", eff_show: "查看", eff_setting: "设置项",
    eff_layer: "来源层", eff_source: "定义位置", eff_brought_by: "配置 / 类型",
    eff_builtin: "内置默认值", eff_none: "此设备没有适用的规则",
    eff_kinds_hint: "未登记设备的配置",
    // floor map (pages/floor.js)
    floor_map: "车间地图", floor_map_id: "地图", floor_heatmap: "5G 覆盖热力图",
    floor_metric: "指标", floor_agvs: "地图上的 AGV", floor_position: "位置",
    floor_battery: "电量", floor_no_agvs: "过去 24 小时内没有 AGV 在此地图上报位置",
    floor_no_plan: "尚未上传平面图：地图按位置自动缩放",
    // pages/availability.js: 5G scorecard and alarm root cause
    av_title: "5G 通信服务可用性", av_link: "5G 评分卡",
    av_hint: "按 5G 模组计算：消息后超过传输间隔 + 生存时间仍未收到下一条消息即为不可用，直到下一条消息到达（3GPP TS 22.261 / 22.104）。",
    av_flows: "业务流", av_availability: "可用性", av_flows_met: "达标业务流",
    av_outages: "中断次数", av_longest: "最长中断", av_unavailable: "不可用时长",
    av_deadline: "传输间隔 + 生存时间", av_rsrp_bands: "RSRP 区间", av_sinr_bands: "SINR 区间",
    p50: "p50", p95: "p95", p99: "p99",
    cause_network_suspected: "疑似网络原因", cause_link_consequence: "由 5G 链路引起",
    // OEE page (pages/oee.js)
    oee_title: "设备综合效率（OEE）", oee_link: "OEE", oee_back: "返回项目",
    oee_availability: "时间开动率", oee_effectiveness: "性能开动率", oee_quality: "合格品率",
    oee_oee: "OEE", oee_run: "运行时间", oee_down: "非计划停机", oee_planned_busy: "计划负荷时间",
    oee_produced: "合格数 / 产量", oee_good: "合格数",
    oee_no_plan: "未设置班次：OEE 需要班次计划（由管理员在下方设置）。",
    oee_by_machine: "各设备 OEE", oee_by_line: "各产线 OEE", oee_machine: "设备", oee_line: "产线",
    oee_no_line: "（未分配产线）", oee_pareto: "停机原因（帕累托）", oee_trend: "各班次 OEE（%）",
    oee_settings: "班次计划与理想节拍", oee_timezone: "时区",
    oee_ideal_cycle: "理想节拍（默认）", oee_minutes: "分钟", oee_downtime: "停机时间",
    oee_stops: "次停机", oee_bad_json: "不是有效的 JSON", oee_saved: "OEE 设置已保存",
    // report page (evidence report buttons)
    report: "报告", report_csv: "报告 CSV", report_failed: "报告生成失败",
    report_hint: "所选时间范围的成效报告：指标与目标、OEE、5G 服务可用性、告警、数据完整性",
  },
};

let lang = localStorage.getItem("f5g.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");

export function t(key) {
  return STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
}

export function currentLang() {
  return lang;
}

export function setLang(next) {
  lang = next;
  localStorage.setItem("f5g.lang", next);
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
}

export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

// An ISO 8601 instant as the API sends it (always with its zone), e.g. a record's `ts`.
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

export function isInstant(v) {
  return typeof v === "string" && ISO_INSTANT.test(v) && !Number.isNaN(Date.parse(v));
}

// Every time on a page in the browser's own zone, the same way.
export function fmtTime(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

export function fmtNum(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB", {
    maximumFractionDigits: digits,
  });
}

export function fmtPct(v, digits = 1) {
  return v === null || v === undefined ? "–" : `${fmtNum(v * 100, digits)} %`;
}
