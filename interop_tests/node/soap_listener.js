'use strict';
// A node-soap service hosted on a hyco-https relayed server: soap.listen(server, path, service, wsdl).
//
// Usage: node soap_listener.js --path ENTITY --key KEY [relay options] [--location URL] [--retry]
//   relay options: see relay_options.js (--relay, --key-name, --token, --token-in, --tls, ...).
//   --location URL  soap:address in the WSDL (default http[s]://RELAY/ENTITY, the relay address)
// Service PayrollService (SOAP 1.1, document/literal, namespace below):
//   GetSalary(employeeId:int) -> salary:decimal; unknown id -> soap:Client fault, HTTP 500
//   Echo(text:string) -> text:string (handy for bodies over 64 KiB)
//   Repeat(text:string, count:int) -> text:string, text repeated count times (a small
//     request with a big reply); a negative count or a reply over 16 MiB -> soap:Client fault
// The WSDL is served at GET /ENTITY?wsdl (node-soap does that itself).
// Stdout: "READY <wsdl url>" once the control channel is open and node-soap has parsed the
// WSDL; then {"event":"request",...} per request. SIGTERM/SIGINT: close and exit 0.
//
// node-soap's listen() accepts any EventEmitter with listeners('request'): it takes over the
// 'request' listeners and passes non-matching paths to the previous ones. It calls
// server.address() if that is a function (hyco-https's server has none; node-soap then uses
// "http://undefined" as a base only to parse req.url).

const https = require('hyco-https');
const soap = require('soap');
const { parseArgs, RELAY_BOOLEANS, relayConfig, hcUri, httpUri, tokenFactory, withQueryToken, redact, emit, fail } =
  require('./relay_options');

const NS = 'http://soap-relay.example/payroll';
const SALARIES = { 1: 41000.5, 7: 72000, 42: 99999.99 };
const MAX_REPEAT = 16 * 1024 * 1024; // bytes of UTF-8 a Repeat reply may hold

function wsdlXml(location) {
  return `<?xml version="1.0" encoding="UTF-8"?>
<definitions name="PayrollService" targetNamespace="${NS}"
    xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:tns="${NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <types>
    <xsd:schema targetNamespace="${NS}" elementFormDefault="qualified">
      <xsd:element name="GetSalary"><xsd:complexType><xsd:sequence>
        <xsd:element name="employeeId" type="xsd:int"/></xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="GetSalaryResponse"><xsd:complexType><xsd:sequence>
        <xsd:element name="salary" type="xsd:decimal"/></xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="Echo"><xsd:complexType><xsd:sequence>
        <xsd:element name="text" type="xsd:string"/></xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="EchoResponse"><xsd:complexType><xsd:sequence>
        <xsd:element name="text" type="xsd:string"/></xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="Repeat"><xsd:complexType><xsd:sequence>
        <xsd:element name="text" type="xsd:string"/>
        <xsd:element name="count" type="xsd:int"/></xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="RepeatResponse"><xsd:complexType><xsd:sequence>
        <xsd:element name="text" type="xsd:string"/></xsd:sequence></xsd:complexType></xsd:element>
    </xsd:schema>
  </types>
  <message name="GetSalaryInput"><part name="parameters" element="tns:GetSalary"/></message>
  <message name="GetSalaryOutput"><part name="parameters" element="tns:GetSalaryResponse"/></message>
  <message name="EchoInput"><part name="parameters" element="tns:Echo"/></message>
  <message name="EchoOutput"><part name="parameters" element="tns:EchoResponse"/></message>
  <message name="RepeatInput"><part name="parameters" element="tns:Repeat"/></message>
  <message name="RepeatOutput"><part name="parameters" element="tns:RepeatResponse"/></message>
  <portType name="PayrollPortType">
    <operation name="GetSalary"><input message="tns:GetSalaryInput"/><output message="tns:GetSalaryOutput"/></operation>
    <operation name="Echo"><input message="tns:EchoInput"/><output message="tns:EchoOutput"/></operation>
    <operation name="Repeat"><input message="tns:RepeatInput"/><output message="tns:RepeatOutput"/></operation>
  </portType>
  <binding name="PayrollBinding" type="tns:PayrollPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="GetSalary">
      <soap:operation soapAction="${NS}/GetSalary"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
    <operation name="Echo">
      <soap:operation soapAction="${NS}/Echo"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
    <operation name="Repeat">
      <soap:operation soapAction="${NS}/Repeat"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="PayrollService">
    <port name="PayrollPort" binding="tns:PayrollBinding"><soap:address location="${location}"/></port>
  </service>
</definitions>`;
}

const service = {
  PayrollService: {
    PayrollPort: {
      GetSalary(args) {
        const id = Number(args.employeeId);
        if (!Object.prototype.hasOwnProperty.call(SALARIES, id)) {
          throw {
            Fault: {
              faultcode: 'soap:Client',
              faultstring: `Unknown employee ${args.employeeId}`,
              detail: { UnknownEmployee: { employeeId: String(args.employeeId) } },
              statusCode: 500,
            },
          };
        }
        return { salary: SALARIES[id] };
      },
      Echo(args) {
        return { text: args.text };
      },
      Repeat(args) {
        const text = String(args.text);
        const count = Number(args.count);
        if (!Number.isInteger(count) || count < 0 || Buffer.byteLength(text) * count > MAX_REPEAT) {
          throw {
            Fault: {
              faultcode: 'soap:Client',
              faultstring: `Repeat count ${args.count} is negative or makes a reply over ${MAX_REPEAT} bytes`,
              statusCode: 500,
            },
          };
        }
        return { text: text.repeat(count) };
      },
    },
  },
};

function main() {
  const { opts } = parseArgs(process.argv.slice(2), { booleans: [...RELAY_BOOLEANS, 'retry'] });
  const cfg = relayConfig(opts);
  const location = opts.location || httpUri(cfg);

  const baseUri = hcUri(cfg, 'listen');
  const makeToken = tokenFactory(cfg, baseUri);
  const listenUri = withQueryToken(cfg, baseUri, makeToken && makeToken());
  const token = cfg.tokenIn === 'header' && makeToken ? makeToken : '';
  const server = https.createRelayedServer({ server: listenUri, token });

  // Requests outside the SOAP path reach this listener (node-soap forwards them here).
  server.on('request', (req, res) => {
    emit({ event: 'request', method: req.method, url: req.url, routed: 'fallback' });
    res.statusCode = 404;
    res.setHeader('Content-Type', 'text/plain');
    res.end(`no SOAP service at ${req.url}\n`);
  });

  let listening = false;
  let soapReady = false;
  let announced = false;
  const announce = () => {
    if (listening && soapReady && !announced) {
      announced = true;
      process.stdout.write(`READY ${location}?wsdl\n`);
    }
  };

  const soapServer = soap.listen(server, '/' + cfg.path, service, wsdlXml(location), (err) => {
    if (err) fail(`node-soap could not load the WSDL: ${err.message || err}`, 2);
    soapReady = true;
    announce();
  });
  soapServer.log = (type, data, req) => {
    if (type === 'info' && req && /^Handling/.test(data)) {
      emit({ event: 'request', method: req.method, url: req.url, soapaction: req.headers.soapaction || null });
    } else if (type === 'error') {
      process.stderr.write(`soap error: ${data && data.stack ? data.stack : JSON.stringify(data)}\n`);
    }
  };

  server.on('listening', () => {
    if (listening) emit({ event: 'listening' });
    listening = true;
    announce();
  });
  server.on('error', (event) => {
    const message = (event && (event.message || (event.error && event.error.message))) || String(event);
    process.stderr.write(`control channel error: ${message}\n`);
    if (!listening && !opts.retry) fail(`listener could not connect to ${redact(listenUri)}: ${message}`, 2);
  });

  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  server.listen();
}

try {
  main();
} catch (err) {
  fail(err.message, 2);
}
