// The contract of the self-hosted WCF service (Service.cs), shared with the
// WCF client: plain WCF, DataContractSerializer, a typed fault, a one-way call.
using System.Runtime.Serialization;
using System.ServiceModel;

namespace SoapRelay.Interop
{
    public static class WcfNames
    {
        public const string Tns = "urn:soap-relay:wcf-payroll";
    }

    [DataContract(Namespace = WcfNames.Tns)]
    public class Staff
    {
        [DataMember(Order = 0)] public int Id;
        [DataMember(Order = 1)] public string Name;
        [DataMember(Order = 2)] public string Department;
        [DataMember(Order = 3)] public decimal Salary;
    }

    [DataContract(Namespace = WcfNames.Tns)]
    public class UnknownStaffFault
    {
        [DataMember] public int Id;
        [DataMember] public string Message;
    }

    [ServiceContract(Namespace = WcfNames.Tns, Name = "WcfPayroll")]
    public interface IWcfPayroll
    {
        [OperationContract]
        [FaultContract(typeof(UnknownStaffFault))]
        decimal GetSalary(int id);

        [OperationContract]
        Staff[] ListStaff(string department);

        [OperationContract]
        string Echo(string text);

        [OperationContract(IsOneWay = true)]
        void SubmitTimesheet(int id, decimal hours);

        // How many timesheets the service has handled: a one-way call ran exactly once.
        [OperationContract]
        int TimesheetCount();
    }
}
