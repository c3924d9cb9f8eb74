// A WCF client (Mono's System.ServiceModel) calling a service through the relay.
//
//   mono WcfClient.exe ADDRESS BINDING CONTRACT TOKEN_PLACE TOKEN COMMAND...
//
//   BINDING      basic (BasicHttpBinding, SOAP 1.1) | soap12 (CustomBinding:
//                TextMessageEncoding Soap12WSAddressing10 + HttpTransport)
//   CONTRACT     spyne (ISpynePayroll / ISpyneTimesheets) | wcf (IWcfPayroll)
//   TOKEN_PLACE  http (ServiceBusAuthorization header) | soap (RelayAccessToken
//                SOAP header) | none (TOKEN is ignored: pass "-")
//   COMMAND      salary:ID  employees[:DEPT]  echo:LENGTH  timesheet:ID:HOURS  count
//
// Each command prints one line, "COMMAND<TAB>ok<TAB>RESULT", or
// "COMMAND<TAB>fault<TAB>CODE<TAB>REASON[<TAB>DETAIL]" for a FaultException, or
// "COMMAND<TAB>error<TAB>TYPE<TAB>MESSAGE" for any other failure. Exit code 0
// unless the arguments are wrong (2).
using System;
using System.Globalization;
using System.Linq;
using System.ServiceModel;
using System.ServiceModel.Channels;
using System.Text;

namespace SoapRelay.Interop
{
    public static class WcfClient
    {
        const int MaxMessage = 4 * 1024 * 1024;

        public static int Main(string[] args)
        {
            if (args.Length < 6)
            {
                Console.Error.WriteLine("usage: WcfClient.exe ADDRESS basic|soap12 spyne|wcf http|soap|none TOKEN COMMAND...");
                return 2;
            }
            var address = new EndpointAddress(args[0]);
            var binding = MakeBinding(args[1]);
            var place = (TokenPlace)Enum.Parse(typeof(TokenPlace), args[3], true);
            var caller = new Caller(address, binding, args[2], place, args[4]);
            foreach (var command in args.Skip(5))
            {
                Console.WriteLine(command + "\t" + caller.Run(command));
            }
            caller.Close();
            return 0;
        }

        static Binding MakeBinding(string name)
        {
            if (name == "basic")
            {
                var basic = new BasicHttpBinding();
                basic.MaxReceivedMessageSize = MaxMessage;
                basic.ReaderQuotas.MaxStringContentLength = MaxMessage;
                return basic;
            }
            if (name == "soap12")
            {
                var encoding = new TextMessageEncodingBindingElement(MessageVersion.Soap12WSAddressing10, Encoding.UTF8);
                encoding.ReaderQuotas.MaxStringContentLength = MaxMessage;
                var transport = new HttpTransportBindingElement();
                transport.MaxReceivedMessageSize = MaxMessage;
                return new CustomBinding(encoding, transport);
            }
            throw new ArgumentException("unknown binding " + name);
        }
    }

    class Caller
    {
        readonly EndpointAddress address;
        readonly Binding binding;
        readonly bool spyne;
        readonly TokenPlace place;
        readonly string token;

        public Caller(EndpointAddress address, Binding binding, string contract, TokenPlace place, string token)
        {
            this.address = address;
            this.binding = binding;
            this.spyne = contract == "spyne";
            this.place = place;
            this.token = token;
        }

        public void Close() { }

        public string Run(string command)
        {
            var parts = command.Split(':');
            try
            {
                return "ok\t" + (spyne ? RunSpyne(parts) : RunWcf(parts));
            }
            catch (FaultException<UnknownStaffFault> typed)
            {
                return Fault(typed) + "\t" + typed.Detail.Id + " " + typed.Detail.Message;
            }
            catch (FaultException fault)
            {
                return Fault(fault);
            }
            catch (Exception exc)
            {
                var inner = exc.InnerException == null ? "" : " | " + exc.InnerException.Message;
                return "error\t" + exc.GetType().Name + "\t" + OneLine(exc.Message + inner);
            }
        }

        static string Fault(FaultException fault)
        {
            var code = fault.Code.SubCode != null ? fault.Code.Name + "/" + fault.Code.SubCode.Name : fault.Code.Name;
            return "fault\t" + code + "\t" + OneLine(fault.Reason.ToString());
        }

        static string OneLine(string text)
        {
            return text.Replace("\r", " ").Replace("\n", " ").Replace("\t", " ");
        }

        // Calls one operation inside an OperationContextScope, with the token where asked.
        T Call<TChannel, T>(Func<TChannel, T> call)
        {
            var factory = new ChannelFactory<TChannel>(binding, address);
            var channel = factory.CreateChannel();
            try
            {
                using (new OperationContextScope((IContextChannel)channel))
                {
                    RelayToken.Attach(place, token);
                    return call(channel);
                }
            }
            finally
            {
                var comm = (ICommunicationObject)channel;
                if (comm.State == CommunicationState.Faulted) comm.Abort(); else comm.Close();
                factory.Close();
            }
        }

        string RunSpyne(string[] c)
        {
            switch (c[0])
            {
                case "salary":
                    return Call<ISpynePayroll, decimal>(p => p.GetSalary(long.Parse(c[1]))).ToString(CultureInfo.InvariantCulture);
                case "employees":
                    var staff = Call<ISpynePayroll, EmployeeArray>(p => p.ListEmployees());
                    return string.Join(";", staff.Select(e => e.Id + "|" + e.Name + "|" + e.Department));
                case "echo":
                    return Echo(int.Parse(c[1]), text => Call<ISpynePayroll, string>(p => p.Echo(text)));
                case "timesheet":
                    return Call<ISpyneTimesheets, string>(p =>
                    {
                        p.SubmitTimesheet(long.Parse(c[1]), decimal.Parse(c[2], CultureInfo.InvariantCulture));
                        return "sent";
                    });
            }
            throw new ArgumentException("unknown command " + c[0]);
        }

        string RunWcf(string[] c)
        {
            switch (c[0])
            {
                case "salary":
                    return Call<IWcfPayroll, decimal>(p => p.GetSalary(int.Parse(c[1]))).ToString(CultureInfo.InvariantCulture);
                case "employees":
                    var staff = Call<IWcfPayroll, Staff[]>(p => p.ListStaff(c.Length > 1 ? c[1] : null));
                    return string.Join(";", staff.Select(s => s.Id + "|" + s.Name + "|" + s.Department + "|"
                        + s.Salary.ToString(CultureInfo.InvariantCulture)));
                case "echo":
                    return Echo(int.Parse(c[1]), text => Call<IWcfPayroll, string>(p => p.Echo(text)));
                case "timesheet":
                    return Call<IWcfPayroll, string>(p =>
                    {
                        p.SubmitTimesheet(int.Parse(c[1]), decimal.Parse(c[2], CultureInfo.InvariantCulture));
                        return "sent";
                    });
                case "count":
                    return Call<IWcfPayroll, int>(p => p.TimesheetCount()).ToString(CultureInfo.InvariantCulture);
            }
            throw new ArgumentException("unknown command " + c[0]);
        }

        // Sends LENGTH characters (ASCII and beyond) and says whether they came back unchanged.
        static string Echo(int length, Func<string, string> echo)
        {
            const string pattern = "payroll-\u00e9\u00df\u20ac-0123456789 ";
            var text = new StringBuilder(length);
            while (text.Length < length) text.Append(pattern[text.Length % pattern.Length]);
            var sent = text.ToString();
            var back = echo(sent);
            return back.Length + (back == sent ? " same" : " different");
        }
    }
}
