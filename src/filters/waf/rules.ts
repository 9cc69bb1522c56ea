// Lobby's WAF rules (issue 16), written for this project in the manner of the OWASP Core Rule
// Set: each has an id, a class, a paranoia level (1 = only what ordinary API traffic never
// carries, up to 4 = suspicious characters alone) and a severity score (CRS's: critical 5,
// error 4, warning 3, notice 2). A request's anomaly score is the sum of its rules' severities
// (each rule counted once); it is refused at the route's threshold (default 5: one critical
// rule, or a warning plus a notice...).
//
// Every pattern runs on the normalised, lower-case text of a value (normalize.ts): percent,
// entities, \uXXXX undone, SQL/HTML comments replaced by a space, whitespace runs as one space,
// null bytes dropped. Patterns are plain JS regexes that regex-safety.ts proves safe at load:
// no repetition inside a repetition, every quantifier bounded ({m,n}, n <= 1024; no * or +),
// and a bounded number of ways to match from one position. docs/security-filters.md lists them.

export type WafClass = 'sqli' | 'xss';

export interface WafRule {
  readonly id: number;
  readonly class: WafClass;
  readonly paranoia: 1 | 2 | 3 | 4;
  readonly severity: 2 | 3 | 4 | 5;
  readonly description: string;
  readonly pattern: string;
}

const EVENTS = 'abort|activate|afterprint|animation(?:end|iteration|start)|auxclick|before(?:copy|cut|input|paste|print|toggle|unload)|begin|blur|canplay|change|click|close|contextmenu|copy|cuechange|cut|dblclick|drag(?:end|enter|leave|over|start)?|drop|durationchange|end|ended|error|finish|focus(?:in|out)?|formdata|fullscreenchange|hashchange|input|invalid|key(?:down|press|up)|load(?:eddata|edmetadata|start|end)?|message|mouse(?:down|enter|leave|move|out|over|up|wheel)|page(?:hide|show)|paste|pause|play(?:ing)?|pointer(?:down|enter|leave|move|out|over|rawupdate|up)|popstate|progress|readystatechange|repeat|reset|resize|scroll(?:end)?|search|seek(?:ed|ing)|select(?:start|ionchange)?|show|start|submit|suspend|timeupdate|toggle|touch(?:end|move|start)|transition(?:cancel|end|run|start)|unload|volumechange|webkit\\w{1,32}|wheel';

/** The rule set, by id. Ids are Lobby's own: 21xx SQL injection, 22xx cross-site scripting and template injection. */
export const WAF_RULES: readonly WafRule[] = [
  // --- SQL injection, paranoia 1 -----------------------------------------------------------
  { id: 2101, class: 'sqli', paranoia: 1, severity: 5, description: 'quote, then a boolean operator and a comparison (tautology: \' or \'1\'=\'1)',
    pattern: String.raw`['"\x60]\)?\s{0,8}(?:or|and|xor|\|\||&&)\s{0,8}\(?\s{0,4}['"\x60]?[\w.@$]{0,32}['"\x60]?\s{0,8}(?:=|<>|!=|<=>|<=|>=|<|>|like\b|rlike\b|regexp\b|in\s{0,4}\(|is\s|between\b|not\b|\d|true\b|false\b|null\b)` },
  { id: 2102, class: 'sqli', paranoia: 1, severity: 5, description: 'boolean operator with a numeric comparison or a constant (or 1=1, and 2>1, or true--)',
    pattern: String.raw`(?:^|[\s()])(?:or|and|xor|\|\||&&)\s{0,8}\(?\s{0,4}(?:\d{1,16}\s{0,8}(?:=|<>|!=|<=>|<=|>=|<|>)\s{0,8}\(?\d{1,16}|(?:true|false|not\s{1,4}false|\d{1,16})\s{0,4}(?:--|#|;|$)|\w{1,32}\s{0,4}(?:=|like)\s{0,4}\w{1,32}\s{0,4}(?:--|#)|\d{1,16}\s{0,8}=\s{0,8}(?:char|chr|ascii|cast|convert|concat|select|version|user|database)\s{0,4}\()` },
  { id: 2103, class: 'sqli', paranoia: 1, severity: 5, description: 'UNION [ALL|DISTINCT] SELECT',
    pattern: String.raw`\bunion(?:\s{1,8}|\s{0,8}\(\s{0,8})(?:all\s{1,8}|distinct\s{1,8})?\(?\s{0,4}select\b` },
  { id: 2104, class: 'sqli', paranoia: 1, severity: 5, description: 'stacked query: a statement after ;',
    pattern: String.raw`;\s{0,8}(?:drop\s{1,8}(?:table|database|view|index|user|schema)|delete\s{1,8}from|insert\s{1,8}into|update\s{1,8}[\w.\x60"\[\]]{1,64}\s{1,8}set\b|truncate\s{1,8}(?:table\s)?|create\s{1,8}(?:table|user|database|procedure|function|trigger|login)|alter\s{1,8}(?:table|user|database|login)|exec(?:ute)?\s{1,8}[\w@(]|declare\s{1,8}@|shutdown\b|waitfor\s|select\s{1,8}(?:\*|@@|\d|null\b|pg_sleep|sleep|benchmark|version|user|database|load_file|char|concat|case\b|if\s{0,4}\()|set\s{1,8}@|grant\s{1,8}\w|copy\s{1,8}\w{1,32}\s{1,8}(?:from|to)\s)` },
  { id: 2105, class: 'sqli', paranoia: 1, severity: 5, description: 'time-based blind: sleep(), benchmark(), pg_sleep(), waitfor delay, dbms_lock.sleep',
    pattern: String.raw`\b(?:sleep|pg_sleep|benchmark|randomblob|dbms_lock\.sleep|dbms_pipe\.receive_message|sys\.dbms_session\.sleep)\s{0,8}\(\s{0,8}[\d'"(@$-]|\bwaitfor\s{1,8}(?:delay|time)\s{0,8}['"\d]|\bpg_sleep\b|\bgenerate_series\s{0,4}\(\s{0,4}1\s{0,4},\s{0,4}\d{5}` },
  { id: 2106, class: 'sqli', paranoia: 1, severity: 5, description: 'a word closed by a quote, then a SQL comment (admin\'--, admin\'#, x\'/*)',
    pattern: String.raw`\w['"\x60]\)?(?:--|#|/\*|;\s{0,4}(?:--|#|$))|\w['"\x60]\)?\s{1,2}(?:--|#|/\*)[\s+-]{0,2}$` },
  { id: 2107, class: 'sqli', paranoia: 1, severity: 5, description: 'database catalogue and dangerous procedures (information_schema, sqlite_master, xp_cmdshell)',
    pattern: String.raw`\b(?:information_schema|sysobjects|syscolumns|sysdatabases|pg_catalog|pg_shadow|pg_user|sqlite_master|sqlite_schema|mysql\.user|mysql\.db|all_tables|user_tables|all_tab_columns|dba_users|xp_cmdshell|xp_dirtree|xp_regread|sp_executesql|sp_oacreate|sp_makewebtask|sp_password|msysobjects|sys\.tables|sys\.objects|master\.\.)\b|\bprocedure\s{1,4}analyse\s{0,4}\(` },
  { id: 2108, class: 'sqli', paranoia: 1, severity: 5, description: 'SQL functions of exfiltration and error-based injection (load_file, extractvalue, group_concat, @@version)',
    pattern: String.raw`\b(?:load_file|extractvalue|updatexml|group_concat|concat_ws|unhex|utl_inaddr\.get_host_\w{1,8}|utl_http\.request|dbms_xmlgen\.\w{1,32}|make_set|name_const|json_keys|gtid_subset|xmltype|ctxsys\.drithsx\.sn|lo_import|lo_export|pg_read_file|pg_ls_dir)\s{0,8}\(|@@(?:version|datadir|hostname|basedir|servername|tmpdir)\b|\bexp\s{0,4}\(\s{0,4}~|\bfloor\s{0,4}\(\s{0,4}rand\s{0,4}\(` },
  { id: 2109, class: 'sqli', paranoia: 1, severity: 5, description: 'writing or reading files: into outfile/dumpfile, load data infile',
    pattern: String.raw`\binto\s{1,8}(?:outfile|dumpfile)\b|\bload\s{1,8}data\s{1,8}(?:local\s{1,8})?infile\b` },
  { id: 2110, class: 'sqli', paranoia: 1, severity: 5, description: 'SELECT of a shape prose does not have (select * from, select null, select @@, select from a catalogue)',
    pattern: String.raw`\bselect\s{1,8}(?:\*\s{0,4}from\b|top\s{1,4}\d|@@|null\s{0,4}[,)]|(?:char|version|user|database|sleep|substring|ascii|schema_name|table_name|column_name|password|passwd|username)\b\s{0,4}[(,])` },
  { id: 2111, class: 'sqli', paranoia: 1, severity: 5, description: 'boolean blind through a subquery or function (and ascii(substring(...)), or exists(select ...))',
    pattern: String.raw`(?:\b(?:and|or|xor|having|where)|\|\||&&)\s{0,8}\(?\s{0,4}(?:select|ascii|substring|substr|mid|length|len|sleep|benchmark|exists|if|iif|case|char|ord|extractvalue|updatexml|elt|instr|left|right|db_name|user_name|cast|convert|rand)\s{0,4}\(|\b(?:and|or|where|select)\s{1,8}\(?\s{0,4}case\s{1,8}when\b` },
  { id: 2112, class: 'sqli', paranoia: 1, severity: 5, description: 'a quote or parenthesis, then a clause (\' having 1=1, \') order by 3, \' group by)',
    pattern: String.raw`['"\x60)]\s{0,8}(?:having\s{1,8}\d|order\s{1,4}by\s{1,8}\d|group\s{1,4}by\s{1,8}[\w.,]{1,32}\s{0,4}(?:having|--|#|$|\))|procedure\s{1,4}analyse|(?:r?like|regexp|sounds\s{1,4}like)\s{0,4}['"\x60]|limit\s{1,4}\d{1,8}\s{0,4}(?:,\s{0,4}\d{1,8}\s{0,4})?(?:--|#|;|$)|;\s{0,4}$)` },
  { id: 2113, class: 'sqli', paranoia: 1, severity: 5, description: 'order by a column number then a comment, or a bare numeric end (1 order by 10--)',
    pattern: String.raw`\border\s{1,8}by\s{1,8}\d{1,4}\s{0,4}(?:--|#|/\*|;)|\d\s{1,8}order\s{1,8}by\s{1,8}\d{1,4}\s{0,4}$` },
  { id: 2114, class: 'sqli', paranoia: 1, severity: 5, description: 'char()/chr() concatenation of code points (char(97)+char(100))',
    pattern: String.raw`\b(?:char|chr|nchar)\s{0,4}\(\s{0,4}\d{2,3}[\d\s,]{0,160}\)\s{0,4}(?:\+|\|\||,|\)|&)|\bconcat\s{0,4}\(\s{0,4}(?:0x|char|@@|['"]\s{0,2}['"])` },

  { id: 2115, class: 'sqli', paranoia: 1, severity: 5, description: 'SELECT ... FROM a catalogue or an account table (from information_schema, from dual, from users)',
    pattern: String.raw`\bselect\b.{1,64}\bfrom\s{1,8}(?:information_schema|dual|mysql\.|pg_|sys\.|users?\b|admin\w{0,16}|members?\b|accounts?\b)` },

  { id: 2116, class: 'sqli', paranoia: 1, severity: 5, description: 'SELECT a, b FROM t ending like a query (where x =, limit n, a comment)',
    pattern: String.raw`\bselect\s{1,4}[\w.]{1,32},[\w.,\s]{1,80}\bfrom\s[\w.\x60"]{1,32}\s?(?:limit\s{1,4}\d{1,8}\s?(?:--|#|;|$)|union\b|--|#|;|\))` },

  // --- SQL injection, higher paranoia ------------------------------------------------------
  { id: 2150, class: 'sqli', paranoia: 2, severity: 5, description: 'SELECT ... FROM anywhere',
    pattern: String.raw`\bselect\b.{1,100}\bfrom\b` },
  { id: 2151, class: 'sqli', paranoia: 2, severity: 5, description: 'boolean operator with any comparison (or a=a)',
    pattern: String.raw`\b(?:or|and)\s{1,8}['"]?[\w.]{1,32}['"]?\s{0,4}(?:=|<>|!=|<|>|\blike\b)\s{0,4}['"]?\w` },
  { id: 2152, class: 'sqli', paranoia: 2, severity: 3, description: 'long hexadecimal literal (0x...)',
    pattern: String.raw`\b0x[0-9a-f]{8,64}\b` },
  { id: 2153, class: 'sqli', paranoia: 2, severity: 4, description: 'a quote followed by a clause keyword',
    pattern: String.raw`['"\x60]\s{0,4}(?:group|order)\s{1,4}by\b|['"\x60]\s{0,4}(?:union|having|limit|offset)\b` },
  { id: 2154, class: 'sqli', paranoia: 3, severity: 3, description: 'SQL comment sequence anywhere (--, #, /*)',
    pattern: String.raw`--\s|--$|/\*|(?:^|\s)#` },
  { id: 2155, class: 'sqli', paranoia: 3, severity: 3, description: 'SQL keywords in sequence (insert into, delete from, drop table, update ... set)',
    pattern: String.raw`\b(?:insert\s{1,4}into|delete\s{1,4}from|drop\s{1,4}(?:table|database)|update\s{1,4}\w{1,64}\s{1,4}set|exec(?:ute)?\s{1,4}\w)\b` },
  { id: 2156, class: 'sqli', paranoia: 4, severity: 2, description: 'a quote or a semicolon',
    pattern: String.raw`['";\x60]` },

  // --- XSS and template injection, paranoia 1 ----------------------------------------------
  { id: 2201, class: 'xss', paranoia: 1, severity: 5, description: 'a script element (<script, </script)',
    pattern: String.raw`<\s{0,4}/?\s{0,4}script\b` },
  { id: 2202, class: 'xss', paranoia: 1, severity: 5, description: 'an event-handler attribute (onerror=, onload=, onmouseover= ...)',
    pattern: String.raw`(?:[\s/"'\x60;]|^)on(?:${EVENTS})\s{0,8}=` },
  { id: 2203, class: 'xss', paranoia: 1, severity: 5, description: 'a script URL (javascript:, vbscript:, also spaced: j a v a s c r i p t:)',
    pattern: String.raw`\b(?:javascript|vbscript|livescript|mocha)\s{0,8}:|\bj\s{0,2}a\s{0,2}v\s{0,2}a\s{0,2}s\s{0,2}c\s{0,2}r\s{0,2}i\s{0,2}p\s{0,2}t\s{0,4}:` },
  { id: 2204, class: 'xss', paranoia: 1, severity: 5, description: 'elements that run or embed content (<svg, <math, <iframe, <object, <embed, <base, <meta, <link, <style)',
    pattern: String.raw`<\s{0,4}(?:svg|math|iframe|frame|frameset|object|embed|applet|base|meta|link|style|xss|isindex|marquee|template|portal|noscript|xmp|plaintext|animate|set|handler|listener|bgsound|layer|ilayer)\b` },
  { id: 2205, class: 'xss', paranoia: 1, severity: 3, description: 'elements that carry attributes of interest (<img, <body, <input, <video, <audio, <details, <form, <a ...)',
    pattern: String.raw`<\s{0,4}(?:img|image|body|input|video|audio|source|details|form|button|select|textarea|keygen|a|div|span|p|table|td|html|x|object|track|picture|dialog)[\s/]` },
  { id: 2206, class: 'xss', paranoia: 1, severity: 5, description: 'breaking out of a quoted JS string into a call (\'-alert(1)-\', ";prompt(1)//)',
    pattern: String.raw`['"\x60]\s{0,8}[-+;,)*/|&^%]{1,4}\s{0,8}(?:alert|prompt|confirm|eval|print|top\s{0,2}\[|window\s{0,2}\[|self\s{0,2}\[|document\s{0,2}\.|this\s{0,2}\[|constructor|settimeout|setinterval|fetch|import\s{0,2}\()` },
  { id: 2207, class: 'xss', paranoia: 1, severity: 3, description: 'a dialog or eval call (alert(1), prompt`1`, eval(...))',
    pattern: String.raw`\b(?:alert|prompt|confirm|eval|execscript|msgbox)\s{0,8}(?:\(|\x60)|\bstring\s{0,2}\.\s{0,2}fromcharcode\s{0,4}\(|\batob\s{0,4}\(` },
  { id: 2208, class: 'xss', paranoia: 1, severity: 3, description: 'the DOM\'s sensitive objects (document.cookie, document.location, window.location, .innerhtml=)',
    pattern: String.raw`\bdocument\s{0,4}\.\s{0,4}(?:cookie|domain|location|write(?:ln)?\s{0,4}\(|body\s{0,2}\.\s{0,2}innerhtml)|\bwindow\s{0,4}\.\s{0,4}(?:location|name|open\s{0,4}\()|\.\s{0,2}(?:innerhtml|outerhtml)\s{0,4}=|\blocation\s{0,4}\.\s{0,4}(?:href|hash|replace|assign)\b` },
  { id: 2209, class: 'xss', paranoia: 1, severity: 5, description: 'a quoted attribute or tag closed, then a new tag ("><svg, \'><img, </title><script)',
    pattern: String.raw`['"\x60]\s{0,4}/?>\s{0,4}<\s{0,4}[a-z!/]|<\s{0,4}/\s{0,4}(?:title|textarea|style|noscript|iframe|xmp|script|select|option)\s{0,4}>` },
  { id: 2210, class: 'xss', paranoia: 1, severity: 5, description: 'attributes that load or run content (srcdoc=, formaction=, xlink:href=, data:text/html, -moz-binding, expression())',
    pattern: String.raw`\b(?:srcdoc|formaction|xlink:href|dynsrc|lowsrc|background|poster|action)\s{0,4}=\s{0,4}['"\x60]?\s{0,4}(?:javascript|data|vbscript|&#|#)|\bsrcdoc\s{0,4}=|\bdata\s{0,4}:\s{0,4}(?:text/html|image/svg.xml|application/(?:x-)?javascript|text/javascript)|-moz-binding\s{0,4}:|\bexpression\s{0,4}\(|\bbehavior\s{0,4}:\s{0,4}url` },
  { id: 2211, class: 'xss', paranoia: 1, severity: 5, description: 'template injection (server- and client-side): {{7*7}}, {{constructor...}}, ${7*7}, ${jndi:, #{...}, <%= 7*7 %>',
    pattern: String.raw`\{\{\s{0,8}(?:[\w.'"\[\]]{0,48}(?:constructor|__proto__|__class__|__init__|__globals__|__builtins__|__mro__|__subclasses__|\$on|\$eval|\$emit|config|self\b|request\b|lipsum|cycler|joiner|namespace|range\s{0,2}\(|_self|_context|getruntime)|\d{1,8}\s{0,4}[*+/-]\s{0,4}['"\d]|['"][^'"]{0,32}['"]\s{0,4}[*.\[]|\[|\()|\$\{\s{0,8}(?:t\s{0,2}\(|\d{1,8}\s{0,4}[*+/-]|jndi\s{0,4}:|env\s{0,4}:|sys\s{0,4}:|lower\s{0,4}:|upper\s{0,4}:|::|[\w.]{0,48}(?:getclass|runtime|exec|forname|constructor)|['"]|\{)|#\{\s{0,8}(?:\d{1,8}\s{0,4}[*+]|[\w.]{0,48}(?:exec|runtime|system|\x60)|'[^']{0,32}'\s{0,2}\.)|<%=?\s{0,8}(?:\d{1,8}\s{0,4}[*+]|system|exec|runtime|request|\x60)|\$\{\{|\[\[\s{0,8}\$\{|@\(\s{0,4}\d{1,8}\s{0,4}[*+]\s{0,4}\d` },
  { id: 2212, class: 'xss', paranoia: 1, severity: 5, description: 'an XML/HTML construct that runs script (<!ENTITY, <?xml-stylesheet, <![CDATA[ around markup, <!--<script)',
    pattern: String.raw`<!\s{0,4}(?:entity|doctype[^>]{0,64}\[)|<\?\s{0,4}xml-stylesheet|<!\[cdata\[[^\]]{0,64}<|\bimport\s{0,4}\(\s{0,4}['"\x60](?:https?:|//|data:)` },

  // --- XSS, higher paranoia ----------------------------------------------------------------
  { id: 2250, class: 'xss', paranoia: 2, severity: 5, description: 'any on*= attribute',
    pattern: String.raw`(?:[\s/"'\x60;]|^)on[a-z]{3,32}\s{0,8}=` },
  { id: 2251, class: 'xss', paranoia: 2, severity: 3, description: 'any element with an attribute (<x y=)',
    pattern: String.raw`<[a-z][a-z0-9:-]{0,16}[\s/]{1,8}[a-z:-]{1,32}\s{0,4}=` },
  { id: 2252, class: 'xss', paranoia: 2, severity: 3, description: 'any {{ ... }} template expression',
    pattern: String.raw`\{\{.{0,128}\}\}|\$\{.{0,128}\}` },
  { id: 2253, class: 'xss', paranoia: 3, severity: 3, description: 'any element (<x, </x)',
    pattern: String.raw`<\s{0,4}/?[a-z!?]` },
  { id: 2254, class: 'xss', paranoia: 4, severity: 2, description: 'markup characters (<, >, backtick)',
    pattern: String.raw`[<>\x60]` },
];
