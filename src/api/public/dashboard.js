// The command centre's dashboard: plain DOM, no framework, no CDN. Every value is set as
// text (never as HTML), so nothing a caller stored can run here.
(function () {
  'use strict';

  var KEY_STORE = 'shaodian.dashboard.key';
  var LANG_STORE = 'shaodian.dashboard.lang';
  var params = new URLSearchParams(location.search);
  var REFRESH_MS = Math.max(1000, Number(params.get('refresh') || 5000));
  var PHASES = [
    'REQUESTED',
    'ROOM_ASSIGNED',
    'IN_TRANSIT',
    'OBSERVATION',
    'RELEASE_PENDING',
    'RELEASED',
    'HOSPITAL_TRANSFER',
    'CANCELLED',
  ];
  var COLOURS = ['green', 'yellow', 'red', 'none'];

  var I18N = {
    zh: {
      policyTitle: '防控规则',
      policyHistory: '版本记录',
      directives: '指令',
      p_version: '版本',
      p_name: '名称',
      p_stay: '集中隔离天数',
      p_sampling: '采样日',
      p_created: '创建',
      p_note: '说明',
      p_current: '当前版本',
      p_days: '天',
      p_negatives: '解除需阴性',
      p_checks: '健康监测',
      p_observation: '解除前须有无发热记录',
      p_none: '无',
      d_progress: '进度',
      title: '哨点 · 指挥中心',
      signIn: '进入',
      signOut: '退出',
      keyPrompt: '主管 API 密钥',
      keyHint: '密钥只保存在本标签页（sessionStorage），关闭即清除。',
      activeCases: '在管人员',
      roomsFree: '空闲房间',
      roomsOccupied: '已入住',
      roomsDisinfection: '待消毒',
      openEscalations: '未处理预警',
      openEscalationsOldest: '未处理预警（最早在前）',
      red: '红',
      searchCase: '按编号查询',
      search: '查询',
      hotels: '隔离点空房',
      hotel: '隔离点',
      total: '房间',
      free: '空闲',
      reserved: '已预留',
      occupied: '已入住',
      awaitingDisinfection: '待消毒',
      outOfService: '停用',
      byPhaseColour: '按阶段与颜色',
      phase: '阶段',
      sum: '合计',
      openedAt: '发起时间',
      waiting: '已等待',
      case: '编号',
      kind: '类型',
      level: '级别',
      reason: '原因',
      releasesDue: '即将解除',
      today: '今天',
      tomorrow: '明天',
      due: '解除时间',
      inspection: '居家核查',
      pending: '待出结果',
      name: '姓名',
      room: '房间',
      colour: '颜色',
      none: '—',
      noRows: '无',
      live: '实时',
      stale: '数据可能滞后',
      down: '无法连接',
      updated: '更新于',
      source: '来源',
      sourceWorkflow: '工作流（实时）',
      sourceReadModel: '读模型（可能滞后）',
      notFound: '未找到该编号',
      forbidden: '无权查看',
      badKey: '密钥无效或已吊销',
      needSupervisor: '需要主管（supervisor）密钥',
      releaseDue: '预计解除',
      escalationsOpen: '未处理预警',
      escalationGroups: '预警汇总',
      story: '经过',
      eveningReport: '每日汇报',
      wave: '疫情波次',
      holdsRelease: '尚待解除条件',
      addresses: '居家地址与核查',
      address: '地址',
      samples: '采样',
      sample: '样本',
      dueAt: '应采时间',
      status: '状态',
      result: '结果',
      checks: '健康监测',
      temperature: '体温',
      fever: '发热',
      actions: '处置',
      note: '说明',
      ack: '确认',
      resolve: '解决',
      floorsOf: '楼层',
      floor: '层',
      st_free: '空闲',
      st_reserved: '已预留',
      st_occupied: '已入住',
      st_awaiting_disinfection: '待消毒',
      st_out_of_service: '停用',
      markDisinfected: '已消毒',
      putOutOfService: '停用',
      returnToService: '恢复使用',
      oosReason: '停用原因',
      done: '已完成',
      dayKind: '按',
      calendarDays: '自然日',
      drillDays: '演练日',
      chartFlow: '入住、解除、转院',
      chartOccupancy: '入住与容量',
      chartTests: '核酸、阳性、未处理预警',
      waveTable: '数据表',
      day: '日',
      w_arrivals: '新入住',
      w_releases: '解除',
      w_hospitalTransfers: '转院',
      w_occupiedAtEnd: '在住',
      w_capacity: '容量',
      w_pcrTaken: '核酸采样',
      w_pcrPositive: '阳性',
      w_escalationsOpened: '新预警',
      w_openEscalationsAtEnd: '未处理预警',
      reportDay: '日期',
      show: '查看',
      downloadCsv: '下载 CSV',
      print: '打印',
      r_rooms: '房间',
      r_occupiedAtEndOfDay: '日终入住',
      r_vacantAtEndOfDay: '日终空房',
      r_arrivals: '新入住',
      r_releases: '解除',
      r_hospitalTransfers: '转院',
      r_pcrTaken: '核酸采样',
      r_pcrNegative: '阴性',
      r_pcrPositive: '阳性',
      r_fevers: '发热',
      r_missedChecks: '漏测',
      r_otherExceptions: '其他异常',
      total: '合计',
      when: '时间',
      what: '事件',
      who: '操作人',
      details: '详情',
      certificate: '下载解除隔离证明',
      count: '数量',
      oldestWaiting: '最久已等待',
      hotelsCount: '隔离点数',
      min: '分钟',
      h: '小时',
      d: '天',
      ph_REQUESTED: '已申请',
      ph_ROOM_ASSIGNED: '已分房',
      ph_IN_TRANSIT: '转运中',
      ph_OBSERVATION: '观察中',
      ph_RELEASE_PENDING: '待解除',
      ph_RELEASED: '已解除',
      ph_HOSPITAL_TRANSFER: '转院',
      ph_CANCELLED: '已取消',
      c_green: '绿',
      c_yellow: '黄',
      c_red: '红',
      c_none: '未定',
      i_none: '未申请',
      i_requested: '核查中',
      i_passed: '通过',
      i_failed: '未通过',
    },
    en: {
      policyTitle: 'Policy',
      policyHistory: 'Versions',
      directives: 'Directives',
      p_version: 'Version',
      p_name: 'Name',
      p_stay: 'Stay (days)',
      p_sampling: 'Sampling days',
      p_created: 'Created',
      p_note: 'Note',
      p_current: 'Current version',
      p_days: 'days',
      p_negatives: 'negatives to release',
      p_checks: 'checks',
      p_observation: 'a check without fever before release within',
      p_none: 'none',
      d_progress: 'progress',
      title: 'Shaodian · Command centre',
      signIn: 'Open',
      signOut: 'Sign out',
      keyPrompt: 'Supervisor API key',
      keyHint: 'The key stays in this tab only (sessionStorage) and is gone when you close it.',
      activeCases: 'Active cases',
      roomsFree: 'Rooms free',
      roomsOccupied: 'Occupied',
      roomsDisinfection: 'Awaiting disinfection',
      openEscalations: 'Open escalations',
      openEscalationsOldest: 'Open escalations (oldest first)',
      red: 'red',
      searchCase: 'Find case number',
      search: 'Search',
      hotels: 'Vacancy per hotel',
      hotel: 'Hotel',
      total: 'Rooms',
      free: 'Free',
      reserved: 'Reserved',
      occupied: 'Occupied',
      awaitingDisinfection: 'Disinfection',
      outOfService: 'Out of service',
      byPhaseColour: 'Cases by phase and colour',
      phase: 'Phase',
      sum: 'Total',
      openedAt: 'Opened',
      waiting: 'Waiting',
      case: 'Case',
      kind: 'Kind',
      level: 'Level',
      reason: 'Reason',
      releasesDue: 'Releases due',
      today: 'Today',
      tomorrow: 'Tomorrow',
      due: 'Due',
      inspection: 'Home inspection',
      pending: 'Results pending',
      name: 'Name',
      room: 'Room',
      colour: 'Colour',
      none: '—',
      noRows: 'none',
      live: 'live',
      stale: 'may be stale',
      down: 'unreachable',
      updated: 'updated',
      source: 'Source',
      sourceWorkflow: 'workflow (live)',
      sourceReadModel: 'read model (may lag)',
      notFound: 'No such case',
      forbidden: 'Not allowed',
      badKey: 'Unknown or revoked key',
      needSupervisor: 'A supervisor key is needed',
      releaseDue: 'Release due',
      escalationsOpen: 'Open escalations',
      escalationGroups: 'Open escalations by kind',
      story: 'What happened',
      eveningReport: 'Evening report',
      wave: 'The wave',
      holdsRelease: 'What still holds release',
      addresses: 'Home addresses and inspections',
      address: 'Address',
      samples: 'Samples',
      sample: 'Sample',
      dueAt: 'Due',
      status: 'Status',
      result: 'Result',
      checks: 'Health checks',
      temperature: 'Temperature',
      fever: 'Fever',
      actions: 'Actions',
      note: 'Note',
      ack: 'Acknowledge',
      resolve: 'Resolve',
      floorsOf: 'Floors of',
      floor: 'Floor',
      st_free: 'free',
      st_reserved: 'reserved',
      st_occupied: 'occupied',
      st_awaiting_disinfection: 'awaiting disinfection',
      st_out_of_service: 'out of service',
      markDisinfected: 'Mark disinfected',
      putOutOfService: 'Put out of service',
      returnToService: 'Return to service',
      oosReason: 'Reason',
      done: 'Done',
      dayKind: 'By',
      calendarDays: 'calendar days',
      drillDays: 'drill days',
      chartFlow: 'Arrivals, releases, to hospital',
      chartOccupancy: 'Occupancy and capacity',
      chartTests: 'PCRs, positives, open escalations',
      waveTable: 'Data table',
      day: 'Day',
      w_arrivals: 'Arrivals',
      w_releases: 'Releases',
      w_hospitalTransfers: 'To hospital',
      w_occupiedAtEnd: 'Occupied',
      w_capacity: 'Capacity',
      w_pcrTaken: 'PCRs taken',
      w_pcrPositive: 'Positive',
      w_escalationsOpened: 'New escalations',
      w_openEscalationsAtEnd: 'Open escalations',
      reportDay: 'Day',
      show: 'Show',
      downloadCsv: 'Download CSV',
      print: 'Print',
      r_rooms: 'Rooms',
      r_occupiedAtEndOfDay: 'Occupied at day end',
      r_vacantAtEndOfDay: 'Vacant at day end',
      r_arrivals: 'Arrivals',
      r_releases: 'Releases',
      r_hospitalTransfers: 'To hospital',
      r_pcrTaken: 'PCRs taken',
      r_pcrNegative: 'Negative',
      r_pcrPositive: 'Positive',
      r_fevers: 'Fevers',
      r_missedChecks: 'Missed checks',
      r_otherExceptions: 'Other exceptions',
      total: 'Total',
      when: 'When',
      what: 'What',
      who: 'Who',
      details: 'Details',
      certificate: 'Download the release certificate',
      count: 'Count',
      oldestWaiting: 'Oldest waiting',
      hotelsCount: 'Hotels',
      min: 'min',
      h: 'h',
      d: 'd',
      ph_REQUESTED: 'Requested',
      ph_ROOM_ASSIGNED: 'Room assigned',
      ph_IN_TRANSIT: 'In transit',
      ph_OBSERVATION: 'Observation',
      ph_RELEASE_PENDING: 'Release pending',
      ph_RELEASED: 'Released',
      ph_HOSPITAL_TRANSFER: 'Hospital',
      ph_CANCELLED: 'Cancelled',
      c_green: 'green',
      c_yellow: 'yellow',
      c_red: 'red',
      c_none: 'unset',
      i_none: 'not requested',
      i_requested: 'requested',
      i_passed: 'passed',
      i_failed: 'failed',
    },
  };

  var lang = localStorage.getItem(LANG_STORE) || 'zh';
  var timer = null;
  var last = null;
  // Times show in the command centre's zone (the one "today" is counted in), not the browser's.
  var zone;

  function t(k) {
    var d = I18N[lang] || I18N.zh;
    return d[k] != null ? d[k] : k;
  }
  function $(id) {
    return document.getElementById(id);
  }
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (k === 'text') e.textContent = attrs[k];
        else if (k === 'cls') e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }
  function fmtTime(iso) {
    if (!iso) return t('none');
    var d = new Date(iso);
    var opts = { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' };
    if (zone) opts.timeZone = zone;
    return d.toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', opts);
  }
  function fmtAge(iso) {
    var ms = Date.now() - new Date(iso).getTime();
    var m = Math.max(0, Math.floor(ms / 60000));
    if (m < 60) return m + ' ' + t('min');
    if (m < 1440) return Math.floor(m / 60) + ' ' + t('h') + ' ' + (m % 60) + ' ' + t('min');
    return Math.floor(m / 1440) + ' ' + t('d') + ' ' + Math.floor((m % 1440) / 60) + ' ' + t('h');
  }
  function chip(cls, text) {
    return el('span', { cls: 'chip ' + cls, text: text });
  }
  function colourChip(c) {
    return chip(c || 'none', t('c_' + (c || 'none')));
  }
  function inspChip(s) {
    return chip('insp-' + s, t('i_' + s));
  }

  function applyLang() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    var nodes = document.querySelectorAll('[data-i18n]');
    for (var i = 0; i < nodes.length; i++) nodes[i].textContent = t(nodes[i].getAttribute('data-i18n'));
    $('lang').textContent = lang === 'zh' ? 'English' : '中文';
    document.title = t('title');
    if (last) render(last);
    // The sections drawn from their own calls are drawn again in the new language.
    if (reportShown) {
      showReport();
      showWave();
    }
    if (floorsHotel && !$('floors').hidden) showFloors(floorsHotel);
    var shown = $('search-result').querySelector('dl');
    if (shown && $('search').value) search($('search').value);
  }

  function key() {
    return sessionStorage.getItem(KEY_STORE);
  }

  function api(path) {
    return fetch(path, {
      headers: { Authorization: 'Bearer ' + key(), Accept: 'application/json' },
      cache: 'no-store',
    }).then(function (r) {
      return r.text().then(function (body) {
        var json = null;
        try {
          json = body ? JSON.parse(body) : null;
        } catch (e) {
          json = null;
        }
        return { status: r.status, json: json };
      });
    });
  }

  function showLogin(message) {
    $('login').hidden = false;
    $('main').hidden = true;
    $('signout').hidden = true;
    $('login-error').textContent = message || '';
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function showMain() {
    $('login').hidden = true;
    $('main').hidden = false;
    $('signout').hidden = false;
  }

  function setStatus(kind) {
    var s = $('status');
    s.className = 'status ' + kind;
    s.textContent = t(kind === 'ok' ? 'live' : kind);
  }

  var reportShown = false;
  function refresh() {
    if (!key()) return showLogin();
    Promise.all([
      api('/api/v1/summary'),
      api('/api/v1/hotels'),
      api('/api/v1/escalations?status=open&limit=50'),
      api('/api/v1/escalations/summary?status=open'),
    ])
      .then(function (rs) {
        for (var i = 0; i < rs.length; i++) {
          if (rs[i].status === 401) {
            sessionStorage.removeItem(KEY_STORE);
            return showLogin(t('badKey'));
          }
          if (rs[i].status === 403) {
            sessionStorage.removeItem(KEY_STORE);
            return showLogin(t('needSupervisor'));
          }
        }
        if (rs[0].status !== 200 || rs[1].status !== 200 || rs[2].status !== 200 || rs[3].status !== 200) {
          setStatus('stale');
        } else {
          last = {
            summary: rs[0].json,
            hotels: rs[1].json.items,
            escalations: rs[2].json.items,
            escalationGroups: rs[3].json.groups,
          };
          showMain();
          render(last);
          // The report of today, once (the district's time zone is known now); then on request.
          if (!reportShown) {
            reportShown = true;
            showReport();
            showWave();
            if (last.hotels.length) showPolicy(last.hotels[0].district);
          }
          setStatus('ok');
          $('updated').textContent =
            t('updated') + ' ' + new Date().toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en-GB');
          document.body.setAttribute('data-loaded', String(Date.now()));
        }
      })
      .catch(function () {
        setStatus('down');
      })
      .then(function () {
        if (key()) {
          if (timer) clearTimeout(timer);
          timer = setTimeout(refresh, REFRESH_MS);
        }
      });
  }

  /** The district's current policy, its versions and its directives (GET /districts/{d}/policies, /directives). */
  function showPolicy(district) {
    $('policy-district').textContent = district;
    Promise.all([
      api('/api/v1/districts/' + encodeURIComponent(district) + '/policies'),
      api('/api/v1/directives?district=' + encodeURIComponent(district)),
    ]).then(function (rs) {
      if (rs[0].status !== 200) return;
      var items = rs[0].json.items;
      var cur = items[0];
      var p = cur.policy;
      var dayMs = p.clock.kind === 'compressed' ? p.clock.dayMs : 86400000;
      var obs = p.release.afebrileCheckWithinMs
        ? t('p_observation') + ' ' + Math.round((p.release.afebrileCheckWithinMs / dayMs) * 24) + ' h'
        : t('p_observation') + ': ' + t('p_none');
      $('policy-current').textContent =
        t('p_current') +
        ' v' +
        cur.version +
        ' ' +
        cur.name +
        ' · ' +
        p.stayDays +
        ' ' +
        t('p_days') +
        ' · ' +
        t('p_sampling') +
        ' ' +
        p.sampling.days.join(', ') +
        ' (' +
        p.sampling.type +
        ') · ' +
        p.release.requiredNegatives +
        ' ' +
        t('p_negatives') +
        ' · ' +
        t('p_checks') +
        ' ' +
        p.checkTimes.join(', ') +
        ' · ' +
        obs;
      var body = $('policy-history-body');
      body.textContent = '';
      items.forEach(function (v) {
        var tr = document.createElement('tr');
        [
          'v' + v.version,
          v.name,
          String(v.policy.stayDays),
          v.policy.sampling.days.join(', '),
          v.createdAt.slice(0, 16).replace('T', ' ') + (v.createdBy ? ' · ' + v.createdBy : ''),
          v.note || '',
        ].forEach(function (x) {
          var td = document.createElement('td');
          td.textContent = x;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      var dbody = $('directives-body');
      dbody.textContent = '';
      if (rs[1].status === 200)
        rs[1].json.items.forEach(function (d) {
          var tr = document.createElement('tr');
          [
            d.directiveId,
            'v' + d.policyVersion,
            d.status,
            t('d_progress') + ' ' + d.done + '/' + d.total + ' (' + d.applied + ' / ' + d.skipped + ')',
            d.reason,
          ].forEach(function (x) {
            var td = document.createElement('td');
            td.textContent = x;
            tr.appendChild(td);
          });
          dbody.appendChild(tr);
        });
    });
  }

  function render(d) {
    var s = d.summary;
    zone = s.timeZone;
    $('main').querySelector('[data-testid="total-active"]').textContent = s.activeCases;
    $('main').querySelector('[data-testid="total-free"]').textContent = s.hotels.free;
    $('main').querySelector('[data-testid="total-occupied"]').textContent = s.hotels.occupied;
    $('main').querySelector('[data-testid="total-disinfection"]').textContent = s.hotels.awaitingDisinfection;
    $('main').querySelector('[data-testid="total-escalations"]').textContent = s.openEscalations.total;
    $('main').querySelector('[data-testid="total-red"]').textContent = s.openEscalations.red;

    var hb = $('hotels-body');
    clear(hb);
    if (!d.hotels.length) hb.appendChild(el('tr', null, el('td', { colspan: '8', cls: 'muted', text: t('noRows') })));
    d.hotels.forEach(function (h) {
      var bar = el('div', { cls: 'bar', title: h.free + ' / ' + h.total });
      [
        ['free', h.free],
        ['reserved', h.reserved],
        ['occupied', h.occupied],
        ['disinfection', h.awaitingDisinfection],
      ].forEach(function (p) {
        var seg = el('span', { cls: p[0] });
        seg.style.width = (h.total ? (100 * p[1]) / h.total : 0) + '%';
        bar.appendChild(seg);
      });
      hb.appendChild(
        el(
          'tr',
          { 'data-testid': 'hotel-' + h.id },
          el('td', null, hotelLink(h.id, h.name)),
          el('td', { cls: 'num', 'data-testid': 'hotel-total', text: h.total }),
          el('td', { cls: 'num', 'data-testid': 'hotel-free', text: h.free }),
          el('td', { cls: 'num', 'data-testid': 'hotel-reserved', text: h.reserved }),
          el('td', { cls: 'num', 'data-testid': 'hotel-occupied', text: h.occupied }),
          el('td', { cls: 'num', 'data-testid': 'hotel-disinfection', text: h.awaitingDisinfection }),
          el('td', { cls: 'num', 'data-testid': 'hotel-oos', text: h.outOfService }),
          el('td', null, bar),
        ),
      );
    });

    var head = $('phase-head');
    clear(head);
    head.appendChild(el('th', { text: t('phase') }));
    COLOURS.forEach(function (c) {
      head.appendChild(el('th', { cls: 'num' }, colourChip(c === 'none' ? null : c)));
    });
    head.appendChild(el('th', { cls: 'num', text: t('sum') }));
    var pb = $('phases-body');
    clear(pb);
    PHASES.forEach(function (p) {
      var row = s.byPhaseColour[p] || {};
      var tr = el('tr', { 'data-testid': 'phase-' + p }, el('td', { text: t('ph_' + p) }));
      COLOURS.forEach(function (c) {
        tr.appendChild(el('td', { cls: 'num', 'data-testid': 'phase-' + p + '-' + c, text: row[c] || 0 }));
      });
      tr.appendChild(el('td', { cls: 'num', 'data-testid': 'phase-' + p + '-total', text: s.phases[p] || 0 }));
      pb.appendChild(tr);
    });

    // A wave's 800 "no room" escalations are one row here, not 800 below.
    var gb = $('escalation-groups-body');
    clear(gb);
    if (!d.escalationGroups.length)
      gb.appendChild(el('tr', null, el('td', { colspan: '5', cls: 'muted', text: t('noRows') })));
    d.escalationGroups.forEach(function (g) {
      gb.appendChild(
        el(
          'tr',
          { 'data-testid': 'escalation-group', 'data-kind': g.kind, 'data-level': g.level },
          el('td', null, chip('sev-' + g.severity, g.kind)),
          el('td', { text: g.level }),
          el('td', { cls: 'num', 'data-testid': 'escalation-group-count', text: g.count }),
          el('td', { text: fmtAge(g.oldestOpenedAt) }),
          el('td', { cls: 'num', text: g.hotels }),
        ),
      );
    });

    var eb = $('escalations-body');
    clear(eb);
    if (!d.escalations.length)
      eb.appendChild(el('tr', null, el('td', { colspan: '7', cls: 'muted', text: t('noRows') })));
    d.escalations.forEach(function (e) {
      eb.appendChild(
        el(
          'tr',
          { 'data-testid': 'escalation-row', 'data-id': e.id },
          el('td', { text: fmtTime(e.openedAt) }),
          el('td', { text: fmtAge(e.openedAt) }),
          el('td', null, caseLink(e.caseNo), ' ', e.displayName || ''),
          el('td', { text: e.hotelId || t('none') }),
          el('td', null, chip('sev-' + e.severity, e.kind)),
          el('td', { text: e.level }),
          el('td', { text: e.reason }),
        ),
      );
    });

    renderDue('due-today', s.releasesDue.today);
    renderDue('due-tomorrow', s.releasesDue.tomorrow);
  }

  function caseLink(caseNo) {
    var a = el('a', { href: '#' + caseNo, text: caseNo });
    a.addEventListener('click', function (ev) {
      ev.preventDefault();
      $('search').value = caseNo;
      search(caseNo);
    });
    return a;
  }

  function renderDue(id, rows) {
    var body = $(id + '-body');
    clear(body);
    document.querySelector('[data-testid="' + id + '-count"]').textContent = rows.length;
    body.appendChild(
      el(
        'tr',
        null,
        el('th', { text: t('case') }),
        el('th', { text: t('name') }),
        el('th', { text: t('room') }),
        el('th', { text: t('due') }),
        el('th', { text: t('inspection') }),
        el('th', { text: t('pending') }),
      ),
    );
    if (!rows.length) body.appendChild(el('tr', null, el('td', { colspan: '6', cls: 'muted', text: t('noRows') })));
    rows.forEach(function (r) {
      body.appendChild(
        el(
          'tr',
          { 'data-testid': 'due-row', 'data-case': r.caseNo },
          el('td', null, caseLink(r.caseNo), ' ', colourChip(r.colour)),
          el('td', { text: r.displayName || '' }),
          el('td', { text: (r.hotelId || '') + (r.roomNo ? ' · ' + r.roomNo : '') }),
          el('td', { text: fmtTime(r.releaseDue) }),
          el('td', { 'data-testid': 'due-inspection' }, inspChip(r.inspectionStatus)),
          el('td', { cls: 'num', text: r.pendingResults }),
        ),
      );
    });
  }

  function search(caseNo) {
    var out = $('search-result');
    clear(out);
    caseNo = (caseNo || '').trim();
    if (!caseNo) return;
    api('/api/v1/cases/' + encodeURIComponent(caseNo)).then(function (r) {
      clear(out);
      if (r.status === 404 || r.status === 400) return out.appendChild(el('p', { cls: 'error', text: t('notFound') }));
      if (r.status === 403) return out.appendChild(el('p', { cls: 'error', text: t('forbidden') }));
      if (r.status !== 200)
        return out.appendChild(el('p', { cls: 'error', text: (r.json && r.json.detail) || String(r.status) }));
      var c = r.json;
      var sum = c.summary || {};
      var st = c.state || {};
      if (c.warning) out.appendChild(el('div', { cls: 'warning', 'data-testid': 'search-warning', text: c.warning }));
      var dl = el('dl');
      function row(k, v) {
        dl.appendChild(el('dt', { text: t(k) }));
        dl.appendChild(
          typeof v === 'object' && v && v.nodeType ? el('dd', null, v) : el('dd', { text: v == null ? t('none') : v }),
        );
      }
      row('case', c.caseNo);
      row('source', c.source === 'workflow' ? t('sourceWorkflow') : t('sourceReadModel'));
      row('name', sum.displayName);
      row('phase', t('ph_' + (st.phase || sum.phase)));
      row('colour', colourChip(st.colour || sum.colour));
      row(
        'room',
        (sum.hotelId || (st.room && st.room.hotelId) || '') + ' ' + (sum.roomNo || (st.room && st.room.roomNo) || ''),
      );
      row('releaseDue', fmtTime(st.releaseDue || sum.releaseDue));
      row('inspection', inspChip((st.inspection && st.inspection.status) || sum.inspectionStatus || 'none'));
      row(
        'escalationsOpen',
        st.escalations
          ? st.escalations.filter(function (e) {
              return e.status === 'open';
            }).length
          : sum.openEscalations,
      );
      out.appendChild(dl);
      out.setAttribute('data-source', c.source);
      if (st.releaseBlockers && st.releaseBlockers.length) {
        out.appendChild(el('h3', { text: t('holdsRelease') }));
        var ul = el('ul', { 'data-testid': 'release-blockers' });
        st.releaseBlockers.forEach(function (b) {
          ul.appendChild(el('li', { text: b }));
        });
        out.appendChild(ul);
      }
      if ((st.phase || sum.phase) === 'RELEASED') out.appendChild(certificateButton(c.caseNo));
      if (st.samples) renderSamples(out, st.samples);
      if (st.checks) renderChecks(out, st.checks);
      if (st.escalations) renderCaseEscalations(out, c.caseNo, st.escalations);
      renderAddresses(out, c.caseNo);
      renderStory(out, c.caseNo);
    });
  }

  function simpleTable(testid, headers, rows) {
    var body = el('tbody');
    rows.forEach(function (r) {
      body.appendChild(
        el.apply(
          null,
          ['tr', r.attrs].concat(
            r.cells.map(function (c) {
              return c && c.nodeType ? el('td', null, c) : el('td', { text: c == null ? t('none') : c });
            }),
          ),
        ),
      );
    });
    return el(
      'table',
      { 'data-testid': testid },
      el(
        'thead',
        null,
        el.apply(
          null,
          ['tr', null].concat(
            headers.map(function (h) {
              return el('th', { text: t(h) });
            }),
          ),
        ),
      ),
      body,
    );
  }

  function renderSamples(out, samples) {
    out.appendChild(el('h3', { text: t('samples') }));
    out.appendChild(
      simpleTable(
        'case-samples',
        ['sample', 'kind', 'dueAt', 'status', 'result'],
        samples.map(function (x) {
          return {
            attrs: { 'data-testid': 'sample-row', 'data-sample': x.sampleId },
            cells: [x.sampleId, x.type, fmtTime(x.dueAt), x.status, x.result || t('none')],
          };
        }),
      ),
    );
  }

  // Temperatures as a small chart (uPlot), fevers marked in the table under it.
  var checkChart = null;
  function renderChecks(out, checks) {
    out.appendChild(el('h3', { text: t('checks') }));
    var withT = checks.filter(function (c) {
      return typeof c.temperatureC === 'number';
    });
    if (withT.length && typeof uPlot !== 'undefined') {
      var target = el('div', { 'data-testid': 'temperature-chart' });
      out.appendChild(target);
      var data = [
        withT.map(function (c) {
          return Date.parse(c.takenAt) / 1000;
        }),
        withT.map(function (c) {
          return c.temperatureC;
        }),
      ];
      target.setAttribute('data-series', JSON.stringify(data[1]));
      if (checkChart) checkChart.destroy();
      checkChart = new uPlot(
        {
          width: 420,
          height: 140,
          series: [{ label: t('when') }, { label: '°C', stroke: '#dc2626', width: 2, points: { show: true, size: 5 } }],
          scales: { y: { range: [35.5, 40] } },
        },
        data,
        target,
      );
    }
    out.appendChild(
      simpleTable(
        'case-checks',
        ['when', 'temperature', 'fever', 'who'],
        checks.map(function (x) {
          return {
            attrs: { 'data-testid': 'check-row' },
            cells: [
              fmtTime(x.takenAt),
              x.temperatureC == null ? null : x.temperatureC,
              x.fever ? '●' : '',
              x.by && x.by.name,
            ],
          };
        }),
      ),
    );
  }

  // Escalations with acknowledge / resolve for the roles allowed (the API refuses the others).
  function renderCaseEscalations(out, caseNo, escs) {
    out.appendChild(el('h3', { text: t('escalationsOpen') }));
    out.appendChild(
      simpleTable(
        'case-escalations',
        ['openedAt', 'kind', 'level', 'status', 'reason', 'actions'],
        escs.map(function (e) {
          var actions = el('span');
          if (e.status === 'open' || e.status === 'acked') {
            var idem = 'dash-' + (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
            var note = el('input', {
              type: 'text',
              'aria-label': t('note'),
              placeholder: t('note'),
              'data-testid': 'esc-note',
            });
            function send(kind, body, k) {
              apiPost('/api/v1/escalations/' + encodeURIComponent(e.id) + '/' + kind, body, k).then(function (r) {
                if (r.status === 200) search(caseNo);
                else
                  actions.appendChild(
                    el('span', { cls: 'error', role: 'alert', text: (r.json && r.json.detail) || String(r.status) }),
                  );
              });
            }
            if (e.status === 'open') {
              var ack = el('button', { type: 'button', 'data-testid': 'esc-ack', text: t('ack') });
              ack.addEventListener('click', function () {
                send('ack', note.value ? { note: note.value } : {}, idem + '-ack');
              });
              actions.appendChild(ack);
            }
            var resolve = el('button', { type: 'button', 'data-testid': 'esc-resolve', text: t('resolve') });
            resolve.addEventListener('click', function () {
              if (!note.value.trim()) {
                note.focus();
                return;
              }
              send('resolve', { note: note.value.trim() }, idem + '-resolve');
            });
            actions.appendChild(note);
            actions.appendChild(resolve);
          }
          return {
            attrs: { 'data-testid': 'case-escalation', 'data-id': e.id, 'data-status': e.status },
            cells: [fmtTime(e.openedAt), chip('sev-' + e.severity, e.kind), e.level, e.status, e.reason, actions],
          };
        }),
      ),
    );
  }

  // The home addresses and their single-occupancy inspections (shown, never stored in the page).
  function renderAddresses(out, caseNo) {
    var holder = el('div', { 'data-testid': 'case-addresses' });
    out.appendChild(holder);
    api('/api/v1/cases/' + encodeURIComponent(caseNo) + '/address-inspections').then(function (r) {
      if (r.status !== 200) return;
      holder.appendChild(el('h3', { text: t('addresses') }));
      holder.appendChild(
        simpleTable(
          'address-history',
          ['address', 'inspection', 'when', 'who'],
          r.json.items.map(function (a) {
            return {
              attrs: { 'data-testid': 'address-row', 'data-inspection': a.inspectionId },
              cells: [a.address, inspChip(a.status), fmtTime(a.resultAt || a.requestedAt), a.inspector],
            };
          }),
        ),
      );
    });
  }

  // The case's story from its event log: who did what, when, and why (oldest first).
  function renderStory(out, caseNo) {
    api('/api/v1/cases/' + encodeURIComponent(caseNo) + '/events?limit=500').then(function (r) {
      if (r.status !== 200) return;
      out.appendChild(el('h3', { text: t('story') }));
      var body = el('tbody');
      r.json.items.forEach(function (e) {
        var details = Object.keys(e.payload || {})
          .filter(function (k) {
            return e.payload[k] !== null && e.payload[k] !== undefined;
          })
          .map(function (k) {
            var v = e.payload[k];
            return k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : v);
          })
          .join(', ');
        body.appendChild(
          el(
            'tr',
            { 'data-testid': 'story-row', 'data-kind': e.kind },
            el('td', { text: fmtTime(e.at) }),
            el('td', { text: e.kind }),
            el('td', { text: (e.actor.name || e.actor.id) + (e.actor.role ? ' (' + e.actor.role + ')' : '') }),
            el('td', { text: details }),
          ),
        );
      });
      out.appendChild(
        el(
          'table',
          { 'data-testid': 'story' },
          el(
            'thead',
            null,
            el(
              'tr',
              null,
              el('th', { text: t('when') }),
              el('th', { text: t('what') }),
              el('th', { text: t('who') }),
              el('th', { text: t('details') }),
            ),
          ),
          body,
        ),
      );
    });
  }

  // The PDF is fetched with the key (never put in a URL) and handed to the browser as a file.
  function certificateButton(caseNo) {
    var b = el('button', { type: 'button', 'data-testid': 'certificate', text: t('certificate') });
    b.addEventListener('click', function () {
      fetch('/api/v1/cases/' + encodeURIComponent(caseNo) + '/certificate', {
        headers: { Authorization: 'Bearer ' + key() },
        cache: 'no-store',
      })
        .then(function (r) {
          if (!r.ok) throw new Error(String(r.status));
          return r.blob();
        })
        .then(function (blob) {
          var a = el('a', { href: URL.createObjectURL(blob), download: caseNo + '-R.pdf' });
          document.body.appendChild(a);
          a.click();
          a.remove();
        })
        .catch(function (err) {
          b.textContent = t('certificate') + ' — ' + err.message;
        });
    });
    return b;
  }

  // A hotel floor by floor: rooms coloured by state, framed by their case's colour; the room
  // calls (disinfected, out of service, back in service) from there, for the roles allowed.
  function hotelLink(id, name) {
    var b = el('button', { type: 'button', cls: 'link', 'data-testid': 'open-floors-' + id, text: name });
    b.addEventListener('click', function () {
      showFloors(id);
    });
    return b;
  }
  function apiPost(path, body, idempotencyKey) {
    var headers = { Authorization: 'Bearer ' + key(), 'Content-Type': 'application/json', Accept: 'application/json' };
    if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
    return fetch(path, {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(body || {}),
      cache: 'no-store',
    }).then(function (r) {
      return r.text().then(function (text) {
        var json = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch (e) {
          json = null;
        }
        return { status: r.status, json: json };
      });
    });
  }
  var floorsHotel = null;
  function showFloors(hotelId, selectRoomId) {
    floorsHotel = hotelId;
    Promise.all([
      api('/api/v1/hotels/' + encodeURIComponent(hotelId) + '/rooms'),
      api('/api/v1/cases?hotelId=' + encodeURIComponent(hotelId) + '&limit=500'),
    ]).then(function (rs) {
      var section = $('floors');
      section.hidden = false;
      var grid = $('floors-grid');
      clear(grid);
      clear($('room-actions'));
      if (rs[0].status !== 200) {
        grid.appendChild(el('p', { cls: 'error', text: (rs[0].json && rs[0].json.detail) || String(rs[0].status) }));
        return;
      }
      var colourOf = {};
      if (rs[1].status === 200)
        rs[1].json.items.forEach(function (c) {
          colourOf[c.caseNo] = c.colour;
        });
      $('floors-hotel').textContent = rs[0].json.name;
      var byFloor = {};
      rs[0].json.items.forEach(function (r) {
        (byFloor[r.floor] = byFloor[r.floor] || []).push(r);
      });
      Object.keys(byFloor)
        .map(Number)
        .sort(function (a, b) {
          return b - a;
        })
        .forEach(function (f) {
          var row = el(
            'div',
            { cls: 'floor', 'data-testid': 'floor-' + f },
            el('span', { cls: 'floor-label', text: t('floor') + ' ' + f }),
          );
          byFloor[f]
            .sort(function (a, b) {
              return a.roomNo < b.roomNo ? -1 : a.roomNo > b.roomNo ? 1 : 0;
            })
            .forEach(function (r) {
              var colour = r.caseNo && colourOf[r.caseNo];
              var b = el(
                'button',
                {
                  type: 'button',
                  cls: 'room ' + r.state + (colour ? ' case-' + colour : ''),
                  'data-testid': 'room-' + r.id,
                  'data-state': r.state,
                  title:
                    t('st_' + r.state) +
                    (r.caseNo ? ' · ' + r.caseNo : '') +
                    (r.outOfServiceReason ? ' · ' + r.outOfServiceReason : ''),
                  'aria-label': r.roomNo + ', ' + t('st_' + r.state) + (colour ? ', ' + colour : ''),
                },
                r.roomNo,
                el('small', { text: t('st_' + r.state) }),
              );
              b.addEventListener('click', function () {
                roomActions(hotelId, r, b);
              });
              row.appendChild(b);
              if (r.id === selectRoomId) roomActions(hotelId, r, b);
            });
          grid.appendChild(row);
        });
      section.setAttribute('data-loaded', hotelId + ':' + Date.now());
    });
  }
  function roomActions(hotelId, room, button) {
    var box = $('room-actions');
    clear(box);
    document.querySelectorAll('.room.selected').forEach(function (x) {
      x.classList.remove('selected');
    });
    button.classList.add('selected');
    box.appendChild(el('strong', { text: room.roomNo + ' · ' + t('st_' + room.state) }));
    if (room.caseNo) box.appendChild(caseLink(room.caseNo));
    function act(label, path, body, testid) {
      var b = el('button', { type: 'button', 'data-testid': testid, text: t(label) });
      b.addEventListener('click', function () {
        b.disabled = true;
        apiPost('/api/v1/rooms/' + encodeURIComponent(room.id) + path, body ? body() : {}).then(function (r) {
          if (r.status === 200) {
            showFloors(hotelId, room.id);
          } else {
            b.disabled = false;
            box.appendChild(
              el('span', { cls: 'error', role: 'alert', text: (r.json && r.json.detail) || String(r.status) }),
            );
          }
        });
      });
      box.appendChild(b);
    }
    if (room.state === 'awaiting_disinfection') act('markDisinfected', '/disinfected', null, 'room-disinfected');
    if (room.state === 'free') {
      var reason = el('input', {
        type: 'text',
        'data-testid': 'room-oos-reason',
        'aria-label': t('oosReason'),
        placeholder: t('oosReason'),
      });
      box.appendChild(reason);
      act(
        'putOutOfService',
        '/out-of-service',
        function () {
          return { reason: reason.value || '—' };
        },
        'room-out-of-service',
      );
    }
    if (room.state === 'out_of_service') act('returnToService', '/return-to-service', null, 'room-return');
  }

  // The wave: day by day from one aggregate call, drawn with uPlot (served from node_modules).
  var WAVE_COLUMNS = [
    'arrivals',
    'releases',
    'hospitalTransfers',
    'occupiedAtEnd',
    'pcrTaken',
    'pcrPositive',
    'escalationsOpened',
    'openEscalationsAtEnd',
  ];
  var waveCharts = [];
  function showWave() {
    api('/api/v1/reports/wave?days=' + $('wave-days').value).then(function (r) {
      if (r.status !== 200) return;
      var w = r.json;
      var xs = w.days.map(function (d) {
        return Date.parse(d.start) / 1000;
      });
      function col(k) {
        return w.days.map(function (d) {
          return d[k];
        });
      }
      var capacity = w.days.map(function () {
        return w.capacity;
      });
      waveCharts.forEach(function (c) {
        c.destroy();
      });
      waveCharts = [];
      var width = Math.max(280, Math.floor($('chart-flow').parentNode.clientWidth || 320));
      function chart(id, series) {
        var target = $(id);
        clear(target);
        var opts = {
          width: width,
          height: 180,
          series: [{ label: t('day') }].concat(
            series.map(function (s) {
              return { label: t(s[0]), stroke: s[1], width: 2, points: { show: true, size: 4 } };
            }),
          ),
          axes: [{}, {}],
        };
        var data = [xs].concat(
          series.map(function (s) {
            return s[0] === 'w_capacity' ? capacity : col(s[0].slice(2));
          }),
        );
        target.setAttribute('data-series', JSON.stringify(data.slice(1)));
        waveCharts.push(new uPlot(opts, data, target));
      }
      chart('chart-flow', [
        ['w_arrivals', '#2563eb'],
        ['w_releases', '#16a34a'],
        ['w_hospitalTransfers', '#dc2626'],
      ]);
      chart('chart-occupancy', [
        ['w_occupiedAtEnd', '#7c3aed'],
        ['w_capacity', '#6b7280'],
      ]);
      chart('chart-tests', [
        ['w_pcrTaken', '#0891b2'],
        ['w_pcrPositive', '#dc2626'],
        ['w_openEscalationsAtEnd', '#d97706'],
      ]);
      var head = $('wave-head');
      var body = $('wave-body');
      clear(head);
      clear(body);
      head.appendChild(el('th', { text: t('day') }));
      WAVE_COLUMNS.forEach(function (c) {
        head.appendChild(el('th', { cls: 'num', text: t('w_' + c) }));
      });
      w.days.forEach(function (d) {
        var tr = el('tr', { 'data-testid': 'wave-row', 'data-day': d.label }, el('td', { text: d.label }));
        WAVE_COLUMNS.forEach(function (c) {
          tr.appendChild(el('td', { cls: 'num', 'data-col': c, text: d[c] }));
        });
        body.appendChild(tr);
      });
      document.body.setAttribute('data-wave', w.dayKind + ':' + w.days.length);
    });
  }
  $('wave-days').addEventListener('change', showWave);

  // The evening report: a day per hotel and for the district, on screen, as CSV, on paper.
  var REPORT_COLUMNS = [
    'rooms',
    'occupiedAtEndOfDay',
    'vacantAtEndOfDay',
    'arrivals',
    'releases',
    'hospitalTransfers',
    'pcrTaken',
    'pcrNegative',
    'pcrPositive',
    'fevers',
    'missedChecks',
    'otherExceptions',
  ];
  function localToday() {
    var opts = { year: 'numeric', month: '2-digit', day: '2-digit' };
    if (zone) opts.timeZone = zone;
    return new Intl.DateTimeFormat('en-CA', opts).format(new Date());
  }
  function reportUrl(format) {
    return (
      '/api/v1/reports/daily?date=' + encodeURIComponent($('report-date').value) + (format ? '&format=' + format : '')
    );
  }
  function showReport() {
    if (!$('report-date').value) $('report-date').value = localToday();
    api(reportUrl()).then(function (r) {
      var head = $('report-head');
      var body = $('report-body');
      clear(head);
      clear(body);
      if (r.status !== 200) {
        body.appendChild(
          el('tr', null, el('td', { cls: 'error', text: (r.json && r.json.detail) || String(r.status) })),
        );
        return;
      }
      $('report-date-label').textContent = r.json.date;
      head.appendChild(el('th', { text: t('hotel') }));
      REPORT_COLUMNS.forEach(function (c) {
        head.appendChild(el('th', { cls: 'num', text: t('r_' + c) }));
      });
      function line(label, row, attrs) {
        var tr = el('tr', attrs, el('td', { text: label }));
        REPORT_COLUMNS.forEach(function (c) {
          tr.appendChild(el('td', { cls: 'num', 'data-col': c, text: row[c] }));
        });
        body.appendChild(tr);
      }
      r.json.hotels.forEach(function (h) {
        line(h.name, h, { 'data-testid': 'report-row', 'data-hotel': h.hotelId });
      });
      line(t('total'), r.json.total, { 'data-testid': 'report-total', cls: 'total' });
      document.body.setAttribute('data-report', r.json.date);
    });
  }
  $('report-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    showReport();
  });
  $('report-csv').addEventListener('click', function () {
    fetch(reportUrl('csv'), { headers: { Authorization: 'Bearer ' + key() }, cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.blob();
      })
      .then(function (blob) {
        var a = el('a', {
          href: URL.createObjectURL(blob),
          download: 'evening-report-' + $('report-date').value + '.csv',
          'data-testid': 'report-csv-link',
        });
        document.body.appendChild(a);
        a.click();
        a.remove();
      });
  });
  $('report-print').addEventListener('click', function () {
    document.body.classList.add('printing-report');
    window.print();
  });
  window.addEventListener('afterprint', function () {
    document.body.classList.remove('printing-report');
  });

  $('lang').addEventListener('click', function () {
    lang = lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem(LANG_STORE, lang);
    applyLang();
  });
  $('signout').addEventListener('click', function () {
    sessionStorage.removeItem(KEY_STORE);
    last = null;
    showLogin();
  });
  $('login-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    sessionStorage.setItem(KEY_STORE, $('key').value.trim());
    $('key').value = '';
    refresh();
  });
  $('search-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    search($('search').value);
  });

  applyLang();
  if (key()) refresh();
  else showLogin();
})();
