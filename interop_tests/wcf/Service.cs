// A self-hosted WCF service (Mono's ServiceHost, BasicHttpBinding) on a loopback
// port, with its WSDL at ?wsdl: what a WCF shop already runs on-premises, put
// behind `soaprelay forward` with no change.
//
//   mono WcfService.exe
//
// Prints "READY http://127.0.0.1:PORT/payroll" once it listens, then one line
// "timesheet ID HOURS" per one-way call it handled; runs until it is killed.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.ServiceModel;
using System.ServiceModel.Description;
using System.Threading;

namespace SoapRelay.Interop
{
    [ServiceBehavior(InstanceContextMode = InstanceContextMode.Single, ConcurrencyMode = ConcurrencyMode.Multiple)]
    public class WcfPayroll : IWcfPayroll
    {
        static readonly Staff[] Everyone =
        {
            new Staff { Id = 7, Name = "Ada Lovelace", Department = "Engineering", Salary = 5120.50m },
            new Staff { Id = 8, Name = "Grace Hopper", Department = "Engineering", Salary = 5480.00m },
            new Staff { Id = 12, Name = "Edsger Dijkstra", Department = "Research", Salary = 4975.25m },
        };
        readonly object gate = new object();
        int timesheets;

        public decimal GetSalary(int id)
        {
            var staff = Everyone.FirstOrDefault(s => s.Id == id);
            if (staff == null)
            {
                var detail = new UnknownStaffFault { Id = id, Message = "no such employee" };
                throw new FaultException<UnknownStaffFault>(
                    detail, new FaultReason("No employee has the id " + id), new FaultCode("UnknownEmployee"));
            }
            return staff.Salary;
        }

        public Staff[] ListStaff(string department)
        {
            return Everyone.Where(s => department == null || s.Department == department).ToArray();
        }

        public string Echo(string text) { return text; }

        public void SubmitTimesheet(int id, decimal hours)
        {
            lock (gate)
            {
                timesheets++;
                Console.WriteLine("timesheet " + id + " " + hours.ToString(CultureInfo.InvariantCulture));
            }
        }

        public int TimesheetCount()
        {
            lock (gate) return timesheets;
        }
    }

    public static class WcfService
    {
        const int MaxMessage = 4 * 1024 * 1024;

        public static int Main(string[] args)
        {
            ServiceHost host = null;
            for (var attempt = 0; host == null; attempt++)
            {
                var address = new Uri("http://127.0.0.1:" + FreePort() + "/payroll");
                try
                {
                    host = Open(address);
                }
                catch (AddressAlreadyInUseException) when (attempt < 5)
                {
                    // another process took the port between FreePort and Open: try another
                }
            }
            Console.WriteLine("READY " + host.BaseAddresses[0]);
            Console.Out.Flush();
            Thread.Sleep(Timeout.Infinite);
            return 0;
        }

        static ServiceHost Open(Uri address)
        {
            var host = new ServiceHost(new WcfPayroll(), address);
            var binding = new BasicHttpBinding();
            binding.MaxReceivedMessageSize = MaxMessage;
            binding.ReaderQuotas.MaxStringContentLength = MaxMessage;
            host.AddServiceEndpoint(typeof(IWcfPayroll), binding, "");
            var metadata = new ServiceMetadataBehavior();
            metadata.HttpGetEnabled = true;
            host.Description.Behaviors.Add(metadata);
            host.Open();
            return host;
        }

        // A port the kernel just handed out on 127.0.0.1 (HttpListener cannot bind port 0).
        static int FreePort()
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            return port;
        }
    }
}
