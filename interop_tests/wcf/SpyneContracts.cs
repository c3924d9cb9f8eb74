// Hand-written contracts for the Spyne services the relay bindings host
// (interop_tests/wcf/spyne_site.py). Mono's svcutil writes an empty proxy for
// them, so the interfaces are written here by hand, as a WCF developer would
// after reading the WSDL: document/literal wrapped, elements qualified in the
// service's namespace, results named <Operation>Result (WCF's own convention),
// and data contracts whose member order is the schema's sequence.
using System.Collections.Generic;
using System.Runtime.Serialization;
using System.ServiceModel;

namespace SoapRelay.Interop
{
    public static class SpyneNames
    {
        public const string Tns = "urn:soap-relay:payroll";
    }

    [DataContract(Namespace = SpyneNames.Tns)]
    public class Employee
    {
        [DataMember(Name = "id", Order = 0)] public long Id;
        [DataMember(Name = "name", Order = 1)] public string Name;
        [DataMember(Name = "department", Order = 2)] public string Department;
    }

    // Spyne's Array(Employee): a type of its own holding repeated <Employee> elements.
    [CollectionDataContract(Name = "EmployeeArray", ItemName = "Employee", Namespace = SpyneNames.Tns)]
    public class EmployeeArray : List<Employee> { }

    // PayrollService (samples/payroll/services.py) plus the interop Echo service.
    [ServiceContract(Namespace = SpyneNames.Tns, Name = "Payroll")]
    public interface ISpynePayroll
    {
        [OperationContract(Action = "GetSalary", ReplyAction = "*")]
        decimal GetSalary([MessageParameter(Name = "employee_id")] long employeeId);

        [OperationContract(Action = "ListEmployees", ReplyAction = "*")]
        EmployeeArray ListEmployees();

        [OperationContract(Action = "Echo", ReplyAction = "*")]
        string Echo(string text);
    }

    // TimesheetService, hosted with NetOnewayRelayBinding: nothing comes back.
    [ServiceContract(Namespace = SpyneNames.Tns, Name = "Timesheets")]
    public interface ISpyneTimesheets
    {
        [OperationContract(Action = "SubmitTimesheet", IsOneWay = true)]
        void SubmitTimesheet([MessageParameter(Name = "employee_id")] long employeeId, decimal hours);
    }
}
