// A WCF client calling the payroll demo's PayrollService through the relay:
// a hand-written contract (Mono's svcutil writes an empty proxy) and two calls.
//
//   mono PayrollClient.exe http://127.0.0.1:9350/payroll "SharedAccessSignature sr=..."
using System;
using System.ServiceModel;
using System.ServiceModel.Channels;

[ServiceContract(Namespace = "urn:soap-relay:payroll", Name = "Payroll")]
public interface IPayroll
{
    [OperationContract(Action = "GetSalary", ReplyAction = "*")]
    decimal GetSalary([MessageParameter(Name = "employee_id")] long employeeId);
}

public static class PayrollClient
{
    public static int Main(string[] args)
    {
        var factory = new ChannelFactory<IPayroll>(new BasicHttpBinding(), new EndpointAddress(args[0]));
        var payroll = factory.CreateChannel();
        using (new OperationContextScope((IContextChannel)payroll))
        {
            // The relay token travels in the ServiceBusAuthorization HTTP header.
            var http = new HttpRequestMessageProperty();
            http.Headers["ServiceBusAuthorization"] = args[1];
            OperationContext.Current.OutgoingMessageProperties[HttpRequestMessageProperty.Name] = http;
            Console.WriteLine("GetSalary(7)  = " + payroll.GetSalary(7));
            try
            {
                payroll.GetSalary(99);
            }
            catch (FaultException fault)
            {
                Console.WriteLine("GetSalary(99) -> FaultException " + fault.Code.Name + ": " + fault.Reason);
            }
        }
        factory.Close();
        return 0;
    }
}
