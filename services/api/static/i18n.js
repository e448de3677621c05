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
    commands: "Commands", command: "Command", actor: "By", send: "Send", cancel: "Cancel",
    confirm_send: "Send", no_commands: "No commands sent to this device",
    no_commands_allowed: "No command is allowed for this kind of device",
    cmd_queued: "queued", cmd_sent: "sent", cmd_accepted: "accepted", cmd_rejected: "rejected",
    cmd_completed: "completed", cmd_failed: "failed", cmd_expired: "expired",
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
    commands: "命令", command: "命令", actor: "操作人", send: "发送", cancel: "取消",
    confirm_send: "确认发送", no_commands: "尚未向此设备发送命令",
    no_commands_allowed: "此类设备没有允许的命令",
    cmd_queued: "排队中", cmd_sent: "已发送", cmd_accepted: "已接受", cmd_rejected: "已拒绝",
    cmd_completed: "已完成", cmd_failed: "失败", cmd_expired: "已过期",
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
